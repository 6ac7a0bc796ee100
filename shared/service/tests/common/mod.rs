//! Test kit: an API over the in-memory store with demo bars and a signed-request builder.
#![allow(dead_code)]

use pipai_engine::Timeframe;
use pipai_market_data::Preset;
use pipai_service::api::{Api, ApiSettings};
use pipai_service::auth::sign_request;
use pipai_service::memory::MemoryStore;
use pipai_service::model::{ApiKeyRecord, KeyStatus};
use pipai_service::ports::KeyStore;
use pipai_service::secrets::MasterKey;
use pipai_service::{ApiRequest, ApiResponse, JobId, KeyId, Route, UserId};
use serde_json::{json, Value};

/// 2026-04-29T10:15:00Z, the seeds' "now".
pub const NOW: i64 = 1_777_457_700_000;

pub struct Kit {
    pub store: &'static MemoryStore,
    pub api: Api<&'static MemoryStore, &'static MemoryStore, &'static MemoryStore>,
}

pub struct Client {
    pub key: KeyId,
    pub secret: String,
}

pub fn user(name: &str) -> UserId {
    name.parse().expect("a valid user id")
}

pub fn job_id(text: &str) -> JobId {
    text.parse().expect("a valid job id")
}

/// BTCUSDT and ETHUSDT 1h bars for all of 2025 (from the synthetic presets), made once.
fn hourly_2025() -> &'static [(&'static str, pipai_engine::Bars)] {
    static BARS: std::sync::OnceLock<Vec<(&'static str, pipai_engine::Bars)>> = std::sync::OnceLock::new();
    BARS.get_or_init(|| {
        let (start, end) = (1_735_689_600_000, 1_767_225_600_000); // 2025-01-01 .. 2026-01-01
        Preset::all()
            .into_iter()
            .map(|p| (p.symbol, pipai_market_data::resample(&p.generate(start, end), Timeframe::H1)))
            .collect()
    })
}

pub fn kit() -> Kit {
    kit_with(ApiSettings::default())
}

pub fn kit_with(settings: ApiSettings) -> Kit {
    let store: &'static MemoryStore = Box::leak(Box::new(MemoryStore::new()));
    for (symbol, bars) in hourly_2025() {
        store.put_bars(symbol, Timeframe::H1, bars.clone(), true);
    }
    let api = Api { store, results: store, market: store, master: MasterKey::generate(), settings };
    Kit { store, api }
}

impl Kit {
    pub async fn client(&self, user: &str) -> Client {
        let (key, secret) = pipai_service::secrets::new_key_pair();
        let record = ApiKeyRecord {
            key_id: key.clone(),
            user_id: user.parse().expect("a valid user id"),
            secret_ciphertext: self.api.master.encrypt_secret(key.as_str(), &secret),
            status: KeyStatus::Active,
            created_at_ms: NOW,
            label: "test".into(),
        };
        assert!(self.store.put_key(&record).await.unwrap());
        Client { key, secret }
    }

    pub async fn call(
        &self,
        client: &Client,
        method: &str,
        path_and_query: &str,
        body: &[u8],
        now: i64,
    ) -> ApiResponse {
        let req = signed(client, method, path_and_query, body, now);
        self.send(&req, now).await
    }

    pub async fn send(&self, req: &ApiRequest, now: i64) -> ApiResponse {
        let route = Route::of(&req.method, &req.path).expect("a known route");
        self.api.handle(route, req, now).await
    }
}

pub fn signed(client: &Client, method: &str, path_and_query: &str, body: &[u8], now: i64) -> ApiRequest {
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let headers = sign_request(client.key.as_str(), &client.secret, now, method, path, query, body);
    ApiRequest {
        method: method.into(),
        path: path.into(),
        raw_query: query.into(),
        headers: headers.into_iter().chain([("content-type".to_string(), "application/json".to_string())]).collect(),
        body: body.to_vec(),
    }
}

/// The seed's create body, on 2025 hourly bars.
pub fn seed_body() -> Value {
    json!({
        "template_id": "tpl_grid",
        "params": {"grid_levels": 8, "upper_price": "72000", "lower_price": "60000"},
        "symbols": ["BTCUSDT"],
        "timeframe": "1h",
        "start": "2025-01-01T00:00:00Z",
        "end": "2025-12-31T23:59:59Z",
        "capital": "10000.00",
        "leverage": 1,
        "fee_model": "fixed_bps",
        "fee_bps": "5"
    })
}

pub fn body(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

pub fn assert_error(resp: &ApiResponse, status: u16, code: &str, needle: &str) {
    let b = resp.body_json();
    assert_eq!(resp.status, status, "{b}");
    assert_eq!(b["code"], code, "{b}");
    let message = b["message"].as_str().unwrap_or_default();
    assert!(message.contains(needle), "message {message:?} lacks {needle:?}");
    assert_eq!(b.as_object().unwrap().len(), 2, "error bodies are exactly {{code, message}}: {b}");
}
