//! `/v1/strategies` and create-job's `strategy_id` over the in-memory ports.

mod common;

use common::*;
use pipai_service::auth::HEADER_USED_WEIGHT;
use pipai_service::ApiResponse;
use serde_json::{json, Value};

fn strategy_body() -> Value {
    json!({
        "name": "Grid on BTC",
        "description": "the seed's grid",
        "config": {
            "template_id": "tpl_grid",
            "params": {"grid_levels": 8, "upper_price": "72000", "lower_price": "60000"},
            "symbols": ["BTCUSDT"],
            "timeframe": "1h",
            "capital": "10000.00"
        }
    })
}

async fn create(kit: &Kit, who: &Client, v: &Value, now: i64) -> Value {
    let resp = kit.call(who, "POST", "/v1/strategies", &body(v), now).await;
    assert_eq!(resp.status, 201, "{}", resp.body_json());
    resp.body_json()
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

async fn patch(kit: &Kit, who: &Client, id: &str, p: &Value, now: i64) -> ApiResponse {
    kit.call(who, "PATCH", &format!("/v1/strategies/{id}"), &body(p), now).await
}

#[tokio::test]
async fn crud_with_versions_and_weights() {
    let kit = kit();
    let alice = kit.client("alice").await;
    let resp = kit.call(&alice, "POST", "/v1/strategies", &body(&strategy_body()), NOW).await;
    assert_eq!((resp.status, resp.header(HEADER_USED_WEIGHT)), (201, Some("10")));
    let s = resp.body_json();
    let id = id_of(&s);
    assert!(id.parse::<pipai_service::StrategyId>().is_ok());
    assert_eq!(resp.header("location"), Some(format!("/v1/strategies/{id}").as_str()));
    assert_eq!(s["version"], 1);
    assert_eq!(s["config"], strategy_body()["config"], "omitted fields stay omitted, nothing filled");
    assert_eq!(
        (s["created_at"].as_str(), s["updated_at"].as_str()),
        (Some("2026-04-29T10:15:00Z"), Some("2026-04-29T10:15:00Z"))
    );
    let mut keys: Vec<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["config", "created_at", "description", "id", "name", "updated_at", "version"]);

    let got = kit.call(&alice, "GET", &format!("/v1/strategies/{id}"), b"", NOW + 1).await;
    assert_eq!((got.status, got.header(HEADER_USED_WEIGHT)), (200, Some("12")));
    assert_eq!(got.body_json(), s);

    // Merge patch: params merge recursively, null removes, other fields stay.
    let p = json!({"name": "Grid v2", "description": null, "config": {"params": {"grid_levels": 10}, "capital": null, "leverage": 2}});
    let resp = patch(&kit, &alice, &id, &p, NOW + 1000).await;
    assert_eq!((resp.status, resp.header(HEADER_USED_WEIGHT)), (200, Some("22")));
    let s2 = resp.body_json();
    assert_eq!(s2["version"], 2);
    assert_eq!(s2["name"], "Grid v2");
    assert_eq!(s2["description"], Value::Null);
    assert_eq!(s2["config"]["params"], json!({"grid_levels": 10, "upper_price": "72000", "lower_price": "60000"}));
    assert!(s2["config"].get("capital").is_none());
    assert_eq!(s2["config"]["leverage"], 2);
    assert_eq!(
        (s2["created_at"].clone(), s2["updated_at"].as_str()),
        (s["created_at"].clone(), Some("2026-04-29T10:15:01Z"))
    );

    // An invalid patch changes nothing.
    for (p, message) in [
        (json!({"config": {"template_id": null}}), "config.template_id: is required"),
        (json!({"config": {"params": null}}), "config.params: is required"),
        (json!({"config": {"params": {"grid_levels": 1}}}), "config.params.grid_levels"),
        (json!({"config": {"timeframe": "2h"}}), "config.timeframe"),
        (json!({"name": null}), "name: is required"),
        (json!({"name": ""}), "name:"),
        (json!({"version": 7}), "version: unknown or read-only field"),
        (json!({"config": null}), "config: is required"),
    ] {
        let resp = patch(&kit, &alice, &id, &p, NOW + 2000).await;
        assert_error(&resp, 400, "INVALID_PARAMETER", message);
    }
    let got = kit.call(&alice, "GET", &format!("/v1/strategies/{id}"), b"", NOW + 3000).await.body_json();
    assert_eq!(got, s2);

    let resp = kit.call(&alice, "DELETE", &format!("/v1/strategies/{id}"), b"", NOW + 120_000).await;
    assert_eq!((resp.status, resp.header(HEADER_USED_WEIGHT), resp.body.len()), (204, Some("5"), 0));
    for (method, b) in [("GET", Value::Null), ("PATCH", json!({"name": "x"})), ("DELETE", Value::Null)] {
        let raw = if b.is_null() { vec![] } else { body(&b) };
        let resp = kit.call(&alice, method, &format!("/v1/strategies/{id}"), &raw, NOW + 121_000).await;
        assert_error(&resp, 404, "NOT_FOUND", "no strategy");
    }
    let list = kit.call(&alice, "GET", "/v1/strategies", b"", NOW + 122_000).await.body_json();
    assert_eq!(list["data"], json!([]));
}

#[tokio::test]
async fn create_validates_every_field() {
    let kit = kit();
    let alice = kit.client("alice").await;
    let with = |f: &dyn Fn(&mut Value)| {
        let mut b = strategy_body();
        f(&mut b);
        b
    };
    let cases: Vec<(Value, &str)> = vec![
        (with(&|b| drop(b.as_object_mut().unwrap().remove("name"))), "name: is required"),
        (with(&|b| b["name"] = json!("x".repeat(101))), "name: may have at most 100 characters"),
        (with(&|b| b["name"] = json!("   ")), "name:"),
        (with(&|b| b["description"] = json!("d".repeat(1001))), "description: may have at most 1000"),
        (with(&|b| b["description"] = json!(5)), "description: must be a string"),
        (with(&|b| drop(b.as_object_mut().unwrap().remove("config"))), "config: is required"),
        (with(&|b| b["config"] = json!([])), "config: must be a JSON object"),
        (with(&|b| b["colour"] = json!(1)), "colour: unknown field"),
        (with(&|b| drop(b["config"].as_object_mut().unwrap().remove("params"))), "config.params: is required"),
        (with(&|b| b["config"]["template_id"] = json!("tpl_nope")), "config.template_id: unknown template"),
        (with(&|b| b["config"]["symbols"] = json!(["BTCUSDT", "ETHUSDT"])), "config.symbols: tpl_grid takes exactly 1"),
        (with(&|b| b["config"]["capital"] = json!(5)), "config.capital: must be a decimal string"),
        (with(&|b| b["config"]["end"] = json!("2030-01-01T00:00:00Z")), "config.end: is in the future"),
        (with(&|b| b["config"]["strategy_id"] = json!("st_00000000")), "config.strategy_id: unknown field"),
        (with(&|b| b["config"]["params"]["spacing"] = json!("cubic")), "config.params.spacing"),
    ];
    for (b, message) in cases {
        let resp = kit.call(&alice, "POST", "/v1/strategies", &body(&b), NOW).await;
        assert_error(&resp, 400, "INVALID_PARAMETER", message);
    }
    let resp = kit.call(&alice, "POST", "/v1/strategies", br#"{"name":"a","name":"b"}"#, NOW).await;
    assert_error(&resp, 400, "INVALID_PARAMETER", "name");
    let resp = kit.call(&alice, "GET", "/v1/strategies/st_nothex!", b"", NOW).await;
    assert_error(&resp, 400, "INVALID_PARAMETER", "id:");
}

#[tokio::test]
async fn jobs_from_a_strategy_merge_override_and_echo() {
    let kit = kit();
    let alice = kit.client("alice").await;
    let s = create(&kit, &alice, &strategy_body(), NOW).await;
    let id = id_of(&s);
    let job_body = json!({"strategy_id": id, "start": "2025-03-01T00:00:00Z", "end": "2025-06-01T00:00:00Z",
                          "params": {"grid_levels": 4, "upper_price": "70000", "lower_price": "65000"}});
    let resp = kit.call(&alice, "POST", "/v1/backtest/jobs", &body(&job_body), NOW + 1).await;
    assert_eq!(resp.status, 201, "{}", resp.body_json());
    let job = resp.body_json();
    assert_eq!(job["strategy_version"], 1);
    assert_eq!(
        job["config"],
        json!({"template_id": "tpl_grid",
               "params": {"grid_levels": 4, "upper_price": "70000", "lower_price": "65000", "spacing": "arithmetic"},
               "symbols": ["BTCUSDT"], "timeframe": "1h", "start": "2025-03-01T00:00:00Z", "end": "2025-06-01T00:00:00Z",
               "capital": "10000.00", "leverage": 1, "fee_model": "fixed_bps", "fee_bps": "5", "strategy_id": id})
    );
    let job_id = job["id"].as_str().unwrap().to_string();

    // A field missing from both is a 400 naming it.
    let resp = kit
        .call(
            &alice,
            "POST",
            "/v1/backtest/jobs",
            &body(&json!({"strategy_id": id, "start": "2025-03-01T00:00:00Z"})),
            NOW + 2,
        )
        .await;
    assert_error(&resp, 400, "INVALID_PARAMETER", "end: is required");
    // Overrides are validated as without a strategy.
    let mut bad = job_body.clone();
    bad["capital"] = json!("-1");
    let resp = kit.call(&alice, "POST", "/v1/backtest/jobs", &body(&bad), NOW + 3).await;
    assert_error(&resp, 400, "INVALID_PARAMETER", "capital:");

    // A PATCH bumps the version for new jobs; the old job keeps its config.
    let resp = patch(&kit, &alice, &id, &json!({"config": {"capital": "500"}}), NOW + 4).await;
    assert_eq!(resp.status, 200);
    let job2 = kit.call(&alice, "POST", "/v1/backtest/jobs", &body(&job_body), NOW + 5).await.body_json();
    assert_eq!((job2["strategy_version"].clone(), job2["config"]["capital"].clone()), (json!(2), json!("500")));
    let old = kit.call(&alice, "GET", &format!("/v1/backtest/jobs/{job_id}"), b"", NOW + 6).await.body_json();
    assert_eq!((old["config"].clone(), old["strategy_version"].clone()), (job["config"].clone(), json!(1)));

    // Deleted: the job stays readable, the strategy is unusable.
    let resp = kit.call(&alice, "DELETE", &format!("/v1/strategies/{id}"), b"", NOW + 7).await;
    assert_eq!(resp.status, 204);
    let old = kit.call(&alice, "GET", &format!("/v1/backtest/jobs/{job_id}"), b"", NOW + 8).await;
    assert_eq!((old.status, old.body_json()["config"].clone()), (200, job["config"].clone()));
    let list = kit.call(&alice, "GET", "/v1/backtest/jobs", b"", NOW + 9).await.body_json();
    assert!(list["data"].as_array().unwrap().iter().any(|j| j["id"] == json!(job_id) && j["strategy_version"] == 1));
}

#[tokio::test]
async fn unknown_deleted_and_foreign_strategies_are_one_409_and_404() {
    let kit = kit();
    let (alice, bob) = (kit.client("alice").await, kit.client("bob").await);
    let bobs = id_of(&create(&kit, &bob, &strategy_body(), NOW).await);
    let gone = id_of(&create(&kit, &alice, &strategy_body(), NOW).await);
    assert_eq!(kit.call(&alice, "DELETE", &format!("/v1/strategies/{gone}"), b"", NOW + 1).await.status, 204);
    let window = json!({"start": "2025-03-01T00:00:00Z", "end": "2025-06-01T00:00:00Z"});
    let mut messages = vec![];
    for sid in [bobs.as_str(), gone.as_str(), "st_00000000", "st_0000"] {
        let mut b = window.clone();
        b["strategy_id"] = json!(sid);
        let resp = kit.call(&alice, "POST", "/v1/backtest/jobs", &body(&b), NOW + 2).await;
        assert_error(&resp, 409, "INVALID_STATE", "not a strategy you can use");
        messages.push(resp.body_json()["message"].as_str().unwrap().replace(sid, "ID"));
    }
    assert!(messages.windows(2).all(|w| w[0] == w[1]), "{messages:?}");
    let resp = kit.call(&alice, "POST", "/v1/backtest/jobs", &body(&json!({"strategy_id": 5})), NOW + 3).await;
    assert_error(&resp, 400, "INVALID_PARAMETER", "strategy_id: must be a string");

    for (method, raw) in [("GET", vec![]), ("PATCH", body(&json!({"name": "mine"}))), ("DELETE", vec![])] {
        let resp = kit.call(&alice, method, &format!("/v1/strategies/{bobs}"), &raw, NOW + 4).await;
        assert_error(&resp, 404, "NOT_FOUND", &format!("no strategy {bobs}"));
        let resp = kit.call(&alice, method, "/v1/strategies/st_00000000", &raw, NOW + 4).await;
        assert_error(&resp, 404, "NOT_FOUND", "no strategy st_00000000");
    }
    let b = kit.call(&bob, "GET", &format!("/v1/strategies/{bobs}"), b"", NOW + 5).await.body_json();
    assert_eq!((b["name"].as_str(), b["version"].as_i64()), (Some("Grid on BTC"), Some(1)));
}

#[tokio::test]
async fn the_list_pages_newest_updated_first_with_bound_cursors() {
    let kit = kit();
    let (alice, bob) = (kit.client("alice").await, kit.client("bob").await);
    let mut ids = vec![];
    for i in 0..7 {
        let mut b = strategy_body();
        b["name"] = json!(format!("s{i}"));
        ids.push(id_of(&create(&kit, &alice, &b, NOW + i * 1000).await));
    }
    create(&kit, &bob, &strategy_body(), NOW).await;
    // Updating the oldest makes it the newest.
    assert_eq!(patch(&kit, &alice, &ids[0], &json!({"name": "first"}), NOW + 10_000).await.status, 200);
    let want: Vec<String> = [0, 6, 5, 4, 3, 2, 1].iter().map(|&i| ids[i].clone()).collect();

    let mut seen = vec![];
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let q = match &cursor {
            Some(c) => format!("/v1/strategies?limit=3&cursor={c}"),
            None => "/v1/strategies?limit=3".to_string(),
        };
        let resp = kit.call(&alice, "GET", &q, b"", NOW + 20_000 + pages).await;
        assert_eq!(resp.status, 200, "{}", resp.body_json());
        let page = resp.body_json();
        seen.extend(page["data"].as_array().unwrap().iter().map(id_of));
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!((seen, pages), (want, 3));
    let page = kit.call(&alice, "GET", "/v1/strategies", b"", NOW + 30_000).await.body_json();
    assert_eq!((page["data"].as_array().unwrap().len(), page["next_cursor"].clone()), (7, Value::Null));

    let first = kit.call(&alice, "GET", "/v1/strategies?limit=1", b"", NOW + 30_001).await.body_json();
    let c = first["next_cursor"].as_str().unwrap();
    let resp = kit.call(&bob, "GET", &format!("/v1/strategies?cursor={c}"), b"", NOW + 30_002).await;
    assert_error(&resp, 400, "INVALID_PARAMETER", "cursor:");
    for q in ["limit=0", "limit=101", "limit=x", "status=done"] {
        let resp = kit.call(&alice, "GET", &format!("/v1/strategies?{q}"), b"", NOW + 30_003).await;
        assert_eq!(resp.status, 400, "{q}");
    }
}

#[tokio::test]
async fn concurrent_patches_lose_no_update() {
    let kit = kit();
    let alice = kit.client("alice").await;
    let id = id_of(&create(&kit, &alice, &strategy_body(), NOW).await);
    let (pa, pb) = (json!({"name": "A"}), json!({"description": "B"}));
    let a = patch(&kit, &alice, &id, &pa, NOW + 1);
    let b = patch(&kit, &alice, &id, &pb, NOW + 2);
    let (a, b) = tokio::join!(a, b);
    assert_eq!((a.status, b.status), (200, 200));
    let mut versions = [a.body_json()["version"].as_i64().unwrap(), b.body_json()["version"].as_i64().unwrap()];
    versions.sort_unstable();
    assert_eq!(versions, [2, 3]);
    let s = kit.call(&alice, "GET", &format!("/v1/strategies/{id}"), b"", NOW + 3).await.body_json();
    assert_eq!((s["name"].as_str(), s["description"].as_str(), s["version"].as_i64()), (Some("A"), Some("B"), Some(3)));
}

#[tokio::test]
async fn the_store_writes_an_update_only_over_the_version_it_was_made_from() {
    use pipai_service::ports::{StrategyStore, StrategyUpdateOutcome};
    let kit = kit();
    let alice = kit.client("alice").await;
    let id: pipai_service::StrategyId = id_of(&create(&kit, &alice, &strategy_body(), NOW).await).parse().unwrap();
    let current = kit.store.get_strategy(&id).await.unwrap().unwrap();
    let next = pipai_service::model::StrategyRecord { version: 2, name: "one".into(), ..current.clone() };
    let stale = pipai_service::model::StrategyRecord { version: 2, name: "two".into(), ..current.clone() };
    assert_eq!(kit.store.update_strategy(&next).await.unwrap(), StrategyUpdateOutcome::Updated);
    assert_eq!(kit.store.update_strategy(&stale).await.unwrap(), StrategyUpdateOutcome::VersionConflict);
    let foreign = pipai_service::model::StrategyRecord { version: 3, user_id: user("bob"), ..current };
    assert_eq!(kit.store.update_strategy(&foreign).await.unwrap(), StrategyUpdateOutcome::NotFound);
    assert_eq!(kit.store.get_strategy(&id).await.unwrap().unwrap().name, "one");
}
