//! The public API over the in-memory ports: every documented success and error.

mod common;

use common::*;
use pipai_service::api::ApiSettings;
use pipai_service::auth::{sign_request, HEADER_USED_WEIGHT};
use pipai_service::model::KeyStatus;
use pipai_service::ports::KeyStore;
use serde_json::{json, Value};

#[tokio::test]
async fn create_returns_the_queued_job_with_the_resolved_config() {
    let kit = kit();
    let alice = kit.client("alice").await;
    let resp = kit.call(&alice, "POST", "/v1/backtest/jobs", &body(&seed_body()), NOW).await;
    assert_eq!(resp.status, 201, "{}", resp.body_json());
    let job = resp.body_json();
    assert!(job["id"].as_str().unwrap().parse::<pipai_service::JobId>().is_ok());
    assert_eq!(resp.header("location"), Some(format!("/v1/backtest/jobs/{}", job["id"].as_str().unwrap()).as_str()));
    assert_eq!(job["status"], "queued");
    assert_eq!(job["progress"], 0.0);
    assert_eq!(job["submitted_at"], "2026-04-29T10:15:00Z");
    assert_eq!(
        (job["started_at"].clone(), job["finished_at"].clone(), job["result"].clone(), job["error"].clone()),
        (Value::Null, Value::Null, Value::Null, Value::Null)
    );
    let mut expected = seed_body();
    expected["params"]["spacing"] = json!("arithmetic");
    assert_eq!(job["config"], expected);
    assert_eq!(resp.header(HEADER_USED_WEIGHT), Some("20"));
    // Defaults filled.
    let mut minimal = seed_body();
    for k in ["leverage", "fee_model", "fee_bps"] {
        minimal.as_object_mut().unwrap().remove(k);
    }
    let job = kit.call(&alice, "POST", "/v1/backtest/jobs", &body(&minimal), NOW + 1).await.body_json();
    assert_eq!(
        (job["config"]["leverage"].clone(), job["config"]["fee_model"].clone(), job["config"]["fee_bps"].clone()),
        (json!(1), json!("fixed_bps"), json!("5"))
    );
}

#[tokio::test]
async fn every_create_validation_is_a_400_naming_the_field() {
    let kit = kit();
    let alice = kit.client("alice").await;
    let cases: Vec<(Value, &str)> = vec![
        (json!("not an object"), "body: must be a JSON object"),
        (json!({"template_id": "tpl_grid"}), "params: is required"),
        (
            {
                let mut b = seed_body();
                b["template_id"] = json!("tpl_x");
                b
            },
            "template_id: unknown template",
        ),
        (
            {
                let mut b = seed_body();
                b["params"]["grid_levels"] = json!(500);
                b
            },
            "params.grid_levels",
        ),
        (
            {
                let mut b = seed_body();
                b["end"] = json!("2024-12-31T00:00:00Z");
                b
            },
            "end: must be after start",
        ),
        (
            {
                let mut b = seed_body();
                b["start"] = json!("2019-01-01T00:00:00Z");
                b
            },
            "end: the window from start to end may span at most 5 years",
        ),
        (
            {
                let mut b = seed_body();
                b["end"] = json!("2026-05-01T00:00:00Z");
                b
            },
            "end: is in the future",
        ),
        (
            {
                let mut b = seed_body();
                b["timeframe"] = json!("3m");
                b
            },
            "timeframe: unsupported",
        ),
        (
            {
                let mut b = seed_body();
                b["capital"] = json!("lots");
                b
            },
            "capital:",
        ),
        (
            {
                let mut b = seed_body();
                b["capital"] = json!("0");
                b
            },
            "capital: must be greater than 0",
        ),
        (
            {
                let mut b = seed_body();
                b["leverage"] = json!(0);
                b
            },
            "leverage: must be an integer from 1 to 20",
        ),
        (
            {
                let mut b = seed_body();
                b["fee_model"] = json!("free");
                b
            },
            "fee_model: must be one of",
        ),
        (
            {
                let mut b = seed_body();
                b["symbols"] = json!(["btcusdt"]);
                b
            },
            "symbols[0]",
        ),
        (
            {
                let mut b = seed_body();
                b["extra"] = json!(1);
                b
            },
            "extra: unknown field",
        ),
    ];
    for (i, (b, needle)) in cases.into_iter().enumerate() {
        let resp = kit.call(&alice, "POST", "/v1/backtest/jobs", &body(&b), NOW + i as i64).await;
        assert_error(&resp, 400, "INVALID_PARAMETER", needle);
    }
    let resp = kit.call(&alice, "POST", "/v1/backtest/jobs", b"{\"template_id\": ", NOW + 100).await;
    assert_error(&resp, 400, "INVALID_PARAMETER", "body: is not valid JSON");
}

#[tokio::test]
async fn windows_without_data_are_400_saying_what_is_covered() {
    let kit = kit();
    let alice = kit.client("alice").await;
    let mut b = seed_body();
    b["start"] = json!("2024-06-01T00:00:00Z");
    let resp = kit.call(&alice, "POST", "/v1/backtest/jobs", &body(&b), NOW).await;
    assert_error(
        &resp,
        400,
        "INVALID_PARAMETER",
        "symbols[0]: the window is not covered: BTCUSDT 1h has data from 2025-01-01T00:00:00Z",
    );
    b = seed_body();
    b["symbols"] = json!(["SOLUSDT"]);
    let resp = kit.call(&alice, "POST", "/v1/backtest/jobs", &body(&b), NOW + 1).await;
    assert_error(&resp, 400, "INVALID_PARAMETER", "no market data for SOLUSDT");
    // 4h is derivable from... nothing here: only 1h is stored, and 1h does not make 4h.
    b = seed_body();
    b["timeframe"] = json!("4h");
    let resp = kit.call(&alice, "POST", "/v1/backtest/jobs", &body(&b), NOW + 2).await;
    assert_error(&resp, 400, "INVALID_PARAMETER", "no market data for BTCUSDT");
}

#[tokio::test]
async fn strategy_ids_are_409_invalid_state() {
    let kit = kit();
    let alice = kit.client("alice").await;
    let mut b = seed_body();
    b["strategy_id"] = json!("st_1");
    assert_error(
        &kit.call(&alice, "POST", "/v1/backtest/jobs", &body(&b), NOW).await,
        409,
        "INVALID_STATE",
        "strategy_id",
    );
}

#[tokio::test]
async fn the_sixth_active_job_is_429_per_user() {
    let kit = kit();
    let alice = kit.client("alice").await;
    let requests: Vec<_> =
        (0..20).map(|i| signed(&alice, "POST", "/v1/backtest/jobs", &body(&seed_body()), NOW + i)).collect();
    let responses = send_all(&kit, &requests).await;
    let created = responses.iter().filter(|r| r.status == 201).count();
    let limited: Vec<_> = responses.iter().filter(|r| r.status == 429).collect();
    assert_eq!((created, limited.len()), (5, 15));
    assert_error(limited[0], 429, "RATE_LIMITED", "already have 5 jobs queued or running");
    assert_eq!(kit.store.active_jobs(&user("alice")), 5);
    // Another user is unaffected.
    let bob = kit.client("bob").await;
    assert_eq!(kit.call(&bob, "POST", "/v1/backtest/jobs", &body(&seed_body()), NOW).await.status, 201);
}

async fn send_all(kit: &Kit, requests: &[pipai_service::ApiRequest]) -> Vec<pipai_service::ApiResponse> {
    let mut set = Vec::new();
    for r in requests {
        set.push(kit.send(r, NOW + 50));
    }
    let mut out = Vec::new();
    for f in set {
        out.push(f.await);
    }
    out
}

#[tokio::test]
async fn authentication_failures_are_401_and_do_not_reveal_keys() {
    let kit = kit();
    let alice = kit.client("alice").await;
    let good = signed(&alice, "GET", "/v1/backtest/jobs", b"", NOW);
    assert_eq!(kit.send(&good, NOW).await.status, 200);

    for header in ["x-pipai-api-key", "x-pipai-timestamp", "x-pipai-signature"] {
        let mut r = good.clone();
        r.headers.retain(|(k, _)| k != header);
        assert_error(&kit.send(&r, NOW).await, 401, "UNAUTHENTICATED", "missing header");
    }
    assert_error(&kit.send(&good, NOW + 301_000).await, 401, "UNAUTHENTICATED", "more than 300 s");
    assert_error(&kit.send(&good, NOW - 301_000).await, 401, "UNAUTHENTICATED", "more than 300 s");

    let stranger = Client { key: "pk_0000000000000000".parse().unwrap(), secret: alice.secret.clone() };
    let unknown = kit.send(&signed(&stranger, "GET", "/v1/backtest/jobs", b"", NOW), NOW).await;
    let wrong_secret = Client { key: alice.key.clone(), secret: "guess".into() };
    let bad_sig = kit.send(&signed(&wrong_secret, "GET", "/v1/backtest/jobs", b"", NOW), NOW).await;
    assert_error(&unknown, 401, "UNAUTHENTICATED", "invalid API key or signature");
    assert_eq!(unknown.body, bad_sig.body, "unknown key and bad signature are indistinguishable");

    // The signature covers the query and the body.
    let mut tampered = signed(&alice, "GET", "/v1/backtest/jobs?limit=5", b"", NOW);
    tampered.raw_query = "limit=6".into();
    assert_error(&kit.send(&tampered, NOW).await, 401, "UNAUTHENTICATED", "invalid API key or signature");
    let mut tampered = signed(&alice, "POST", "/v1/backtest/jobs", &body(&seed_body()), NOW);
    tampered.body = body(&json!({"capital": "1"}));
    assert_error(&kit.send(&tampered, NOW).await, 401, "UNAUTHENTICATED", "invalid API key or signature");

    // Disabled keys stop working, with the same message.
    kit.store.set_key_status(&alice.key, KeyStatus::Disabled).await.unwrap();
    assert_error(&kit.send(&good, NOW).await, 401, "UNAUTHENTICATED", "invalid API key or signature");
}

#[tokio::test]
async fn a_replayed_post_is_401_but_gets_may_repeat() {
    let kit = kit();
    let alice = kit.client("alice").await;
    let post = signed(&alice, "POST", "/v1/backtest/jobs", &body(&seed_body()), NOW);
    assert_eq!(kit.send(&post, NOW).await.status, 201);
    assert_error(&kit.send(&post, NOW + 1000).await, 401, "UNAUTHENTICATED", "already used");
    let get = signed(&alice, "GET", "/v1/backtest/jobs", b"", NOW);
    assert_eq!(kit.send(&get, NOW).await.status, 200);
    assert_eq!(kit.send(&get, NOW + 1000).await.status, 200);
}

#[tokio::test]
async fn canonical_query_is_order_and_encoding_independent() {
    let kit = kit();
    let alice = kit.client("alice").await;
    // Signed as "limit=5&status=done", sent reordered and with an encoded character.
    let headers =
        sign_request(alice.key.as_str(), &alice.secret, NOW, "GET", "/v1/backtest/jobs", "limit=5&status=done", b"");
    let req = pipai_service::ApiRequest {
        method: "GET".into(),
        path: "/v1/backtest/jobs".into(),
        raw_query: "status=d%6Fne&limit=5".into(),
        headers,
        body: vec![],
    };
    assert_eq!(kit.send(&req, NOW).await.status, 200);
}

#[tokio::test]
async fn request_weight_is_counted_and_limited_per_minute() {
    let kit = kit_with(ApiSettings { weight_budget: 10, ..ApiSettings::default() });
    let alice = kit.client("alice").await;
    let minute = NOW - NOW % 60_000;
    let r1 = kit.call(&alice, "GET", "/v1/backtest/jobs", b"", minute + 1_000).await;
    assert_eq!(r1.header(HEADER_USED_WEIGHT), Some("5"));
    let r2 = kit.call(&alice, "GET", "/v1/backtest/jobs?limit=1", b"", minute + 2_000).await;
    assert_eq!((r2.status, r2.header(HEADER_USED_WEIGHT)), (200, Some("10")));
    let r3 = kit.call(&alice, "GET", "/v1/backtest/jobs?limit=2", b"", minute + 20_000).await;
    assert_error(&r3, 429, "RATE_LIMITED", "request weight budget of 10");
    assert_eq!(r3.header("retry-after"), Some("40"));
    assert_eq!(r3.header(HEADER_USED_WEIGHT), Some("15"));
    // The next window starts afresh.
    let r4 = kit.call(&alice, "GET", "/v1/backtest/jobs?limit=3", b"", minute + 61_000).await;
    assert_eq!((r4.status, r4.header(HEADER_USED_WEIGHT)), (200, Some("5")));
}

#[tokio::test]
async fn other_users_jobs_are_404_like_missing_ones() {
    let kit = kit();
    let (alice, bob) = (kit.client("alice").await, kit.client("bob").await);
    let job = kit.call(&alice, "POST", "/v1/backtest/jobs", &body(&seed_body()), NOW).await.body_json();
    let id = job["id"].as_str().unwrap();
    let theirs = kit.call(&bob, "GET", &format!("/v1/backtest/jobs/{id}"), b"", NOW).await;
    let missing = kit.call(&bob, "GET", "/v1/backtest/jobs/bt_00000000", b"", NOW).await;
    assert_error(&theirs, 404, "NOT_FOUND", "no job");
    assert_error(&missing, 404, "NOT_FOUND", "no job");
    assert_error(
        &kit.call(&bob, "POST", &format!("/v1/backtest/jobs/{id}/cancel"), b"", NOW).await,
        404,
        "NOT_FOUND",
        "no job",
    );
    assert_error(&kit.call(&bob, "GET", "/v1/backtest/jobs/nope", b"", NOW).await, 400, "INVALID_PARAMETER", "id:");
    let mine = kit.call(&alice, "GET", &format!("/v1/backtest/jobs/{id}"), b"", NOW).await;
    assert_eq!(mine.status, 200);
    assert_eq!(mine.body_json()["id"], id);
    assert_eq!(mine.header(HEADER_USED_WEIGHT), Some("22"));
}

#[tokio::test]
async fn cancel_moves_queued_to_cancelled_once_then_409() {
    let kit = kit();
    let alice = kit.client("alice").await;
    let job = kit.call(&alice, "POST", "/v1/backtest/jobs", &body(&seed_body()), NOW).await.body_json();
    let id = job["id"].as_str().unwrap();
    let resp = kit.call(&alice, "POST", &format!("/v1/backtest/jobs/{id}/cancel"), b"", NOW + 5).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_json()["status"], "cancelled");
    assert!(resp.body_json()["finished_at"].is_string());
    let again = kit.call(&alice, "POST", &format!("/v1/backtest/jobs/{id}/cancel"), b"", NOW + 6).await;
    assert_error(&again, 409, "INVALID_STATE", "already cancelled");
}

#[tokio::test]
async fn list_is_newest_first_filters_and_pages_with_bound_cursors() {
    let kit = kit_with(ApiSettings { max_active_jobs: 100, ..ApiSettings::default() });
    let alice = kit.client("alice").await;
    let bob = kit.client("bob").await;
    let mut ids = Vec::new();
    for i in 0..23 {
        let mut b = seed_body();
        if i % 3 == 0 {
            b["template_id"] = json!("tpl_breakout");
            b["params"] = json!({"lookback": 24});
        }
        let t = NOW - 100_000 + i * 1000;
        let job = kit.call(&alice, "POST", "/v1/backtest/jobs", &body(&b), t).await.body_json();
        ids.push((t, job["id"].as_str().unwrap().to_string(), b["template_id"].as_str().unwrap().to_string()));
    }
    kit.call(&bob, "POST", "/v1/backtest/jobs", &body(&seed_body()), NOW).await;
    ids.reverse();

    // Walk all pages of 10: 10, 10, 3, newest first, nothing of bob's.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let q = match &cursor {
            Some(c) => format!("/v1/backtest/jobs?limit=10&cursor={c}"),
            None => "/v1/backtest/jobs?limit=10".to_string(),
        };
        let page = kit.call(&alice, "GET", &q, b"", NOW).await.body_json();
        pages += 1;
        seen.extend(page["data"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids.iter().map(|(_, id, _)| id.clone()).collect::<Vec<_>>());

    // Filters: template, status, from (inclusive) / to (exclusive).
    let page =
        kit.call(&alice, "GET", "/v1/backtest/jobs?template_id=tpl_breakout&limit=100", b"", NOW).await.body_json();
    assert_eq!(page["data"].as_array().unwrap().len(), 8);
    assert!(page["next_cursor"].is_null());
    let (t5, t2) = (ids[5].0, ids[2].0);
    let window = format!("/v1/backtest/jobs?from={}&to={}", pipai_engine::time::iso(t5), pipai_engine::time::iso(t2));
    let page = kit.call(&alice, "GET", &window, b"", NOW).await.body_json();
    let got: Vec<&str> = page["data"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(got, vec![ids[3].1.as_str(), ids[4].1.as_str(), ids[5].1.as_str()]);
    let none = kit.call(&alice, "GET", "/v1/backtest/jobs?status=done", b"", NOW).await.body_json();
    assert_eq!(none, json!({"data": [], "next_cursor": null}));

    // Summary form: the list never carries the arrays.
    let first = kit.call(&alice, "GET", "/v1/backtest/jobs?limit=1", b"", NOW).await.body_json();
    let c = first["next_cursor"].as_str().unwrap().to_string();
    assert!(first["data"][0]["result"].is_null());

    // A cursor is bound to its filters and its user; garbage and edits are rejected.
    let bad = [
        format!("/v1/backtest/jobs?limit=1&status=queued&cursor={c}"),
        format!("/v1/backtest/jobs?cursor={}x", c),
        "/v1/backtest/jobs?cursor=garbage".to_string(),
    ];
    for q in bad {
        assert_error(&kit.call(&alice, "GET", &q, b"", NOW).await, 400, "INVALID_PARAMETER", "cursor:");
    }
    assert_error(
        &kit.call(&bob, "GET", &format!("/v1/backtest/jobs?limit=1&cursor={c}"), b"", NOW).await,
        400,
        "INVALID_PARAMETER",
        "cursor:",
    );
}

#[tokio::test]
async fn list_parameter_errors_are_400() {
    let kit = kit();
    let alice = kit.client("alice").await;
    let cases = [
        ("/v1/backtest/jobs?status=finished", "status: unknown status"),
        ("/v1/backtest/jobs?limit=0", "limit: must be an integer from 1 to 100"),
        ("/v1/backtest/jobs?limit=101", "limit: must be an integer from 1 to 100"),
        ("/v1/backtest/jobs?limit=ten", "limit:"),
        ("/v1/backtest/jobs?from=yesterday", "from:"),
        ("/v1/backtest/jobs?to=2025-13-01T00:00:00Z", "to:"),
        ("/v1/backtest/jobs?colour=red", "colour: unknown query parameter"),
        ("/v1/backtest/jobs?limit=1&limit=2", "limit: given more than once"),
    ];
    for (q, needle) in cases {
        assert_error(&kit.call(&alice, "GET", q, b"", NOW).await, 400, "INVALID_PARAMETER", needle);
    }
}

#[tokio::test]
async fn non_canonical_integers_and_long_input_are_400_quoted_briefly() {
    let kit = kit();
    let alice = kit.client("alice").await;
    for q in ["limit=+5", "limit=05", "limit=5.0", "limit=%205", "limit=1e1", "limit=-1", "limit="] {
        let resp = kit.call(&alice, "GET", &format!("/v1/backtest/jobs?{q}"), b"", NOW).await;
        assert_error(&resp, 400, "INVALID_PARAMETER", "limit: must be an integer from 1 to 100");
    }
    assert_eq!(kit.call(&alice, "GET", "/v1/backtest/jobs?limit=5", b"", NOW).await.status, 200);
    // A query that is not UTF-8 once decoded is malformed input (400), not a signing failure.
    let resp = kit.call(&alice, "GET", "/v1/backtest/jobs?status=%FF", b"", NOW).await;
    assert_error(&resp, 400, "INVALID_PARAMETER", "query: ");
    // 200 KB in a path id, a query parameter's name and its value: the messages stay short.
    let long = "a".repeat(200_000);
    for (path, needle) in [
        (format!("/v1/backtest/jobs/{long}"), "id: "),
        (format!("/v1/backtest/jobs?{long}=1"), "unknown query parameter"),
        (format!("/v1/backtest/jobs?status={long}"), "status: unknown status"),
        (format!("/v1/backtest/jobs?from={long}"), "from: "),
    ] {
        let resp = kit.call(&alice, "GET", &path, b"", NOW).await;
        assert_error(&resp, 400, "INVALID_PARAMETER", needle);
        let message = resp.body_json()["message"].as_str().unwrap().to_string();
        assert!(message.len() < 300, "{} characters: {}", message.len(), &message[..200]);
    }
}

#[tokio::test]
async fn symbols_and_templates_are_listed() {
    let kit = kit();
    let alice = kit.client("alice").await;
    let resp = kit.call(&alice, "GET", "/v1/backtest/symbols", b"", NOW).await;
    assert_eq!(resp.header(HEADER_USED_WEIGHT), Some("5"));
    let data = resp.body_json()["data"].clone();
    assert_eq!(data[0]["symbol"], "BTCUSDT");
    assert_eq!(data[0]["timeframe"], "1h");
    assert_eq!(data[0]["first_open_time"], "2025-01-01T00:00:00Z");
    assert_eq!(data[0]["synthetic"], true);
    let resp = kit.call(&alice, "GET", "/v1/backtest/templates", b"", NOW).await;
    assert_eq!(resp.header(HEADER_USED_WEIGHT), Some("6"));
    let ids: Vec<Value> = resp.body_json()["data"].as_array().unwrap().iter().map(|t| t["id"].clone()).collect();
    assert!(ids.contains(&json!("tpl_grid")) && ids.contains(&json!("tpl_momentum_rotation")));
}
