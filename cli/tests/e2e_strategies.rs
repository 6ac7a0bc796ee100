//! Stored strategies end to end over HTTP against the local stack (`infra/local.sh up`): CRUD
//! and versions, jobs made from a strategy (overrides, echo, `strategy_version`), the one 409
//! for unusable `strategy_id`s, 404 for another user's strategy on every route, list paging,
//! and the `pipai strategies` / `pipai jobs submit --strategy` commands.

mod support;
use support::*;

use pipai_client::Method;
use serde_json::{json, Value};

fn strategy_body(name: &str) -> Value {
    json!({
        "name": name,
        "description": "moving-average crossover on BTC",
        "config": {"template_id": "tpl_ma_cross", "params": {"fast": 5, "slow": 20}, "symbols": ["BTCUSDT"],
                   "timeframe": "1h", "capital": "10000.00"}
    })
}

fn create_strategy(api: &Api, body: &Value) -> Value {
    let (status, s) = api.call(Method::Post, "/v1/strategies", &[], body.to_string().as_bytes());
    assert_eq!(status, 201, "{s}");
    s
}

fn strategy_call(api: &Api, method: Method, id: &str, body: &Value) -> (u16, Value) {
    let raw = if body.is_null() { String::new() } else { body.to_string() };
    api.call(method, &format!("/v1/strategies/{id}"), &[], raw.as_bytes())
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

#[test]
#[ignore = "needs the local stack: infra/local.sh up"]
fn crud_and_versions() {
    let api = fresh_client("st-crud");
    let r = api.send(Method::Post, "/v1/strategies", &[], strategy_body("ma").to_string().as_bytes());
    assert_eq!(r.status, 201);
    let s = r.json_or_text();
    let id = id_of(&s);
    assert_eq!(r.header("location"), Some(format!("/v1/strategies/{id}").as_str()));
    assert_eq!((s["version"].clone(), s["config"].clone()), (json!(1), strategy_body("ma")["config"].clone()));

    let (status, got) = strategy_call(&api, Method::Get, &id, &Value::Null);
    assert_eq!((status, &got), (200, &s));

    let patch = json!({"description": null, "config": {"params": {"slow": 30}, "capital": null}});
    let (status, s2) = strategy_call(&api, Method::Patch, &id, &patch);
    assert_eq!(status, 200, "{s2}");
    assert_eq!(s2["version"], 2);
    assert_eq!(s2["description"], Value::Null);
    assert_eq!(s2["config"]["params"], json!({"fast": 5, "slow": 30}));
    assert!(s2["config"].get("capital").is_none());

    let (status, err) = strategy_call(&api, Method::Patch, &id, &json!({"config": {"params": {"slow": 2}}}));
    assert_eq!((status, err["code"].as_str()), (400, Some("INVALID_PARAMETER")), "{err}");
    assert!(err["message"].as_str().unwrap().starts_with("config.params.slow"), "{err}");
    let (status, err) = strategy_call(&api, Method::Patch, &id, &json!({"config": {"template_id": null}}));
    assert_eq!((status, err["message"].as_str()), (400, Some("config.template_id: is required")));
    assert_eq!(strategy_call(&api, Method::Get, &id, &Value::Null).1, s2);

    let r = api.send(Method::Delete, &format!("/v1/strategies/{id}"), &[], b"");
    assert_eq!((r.status, r.body.len()), (204, 0));
    for method in [Method::Get, Method::Patch, Method::Delete] {
        let body = if method == Method::Patch { json!({"name": "x"}) } else { Value::Null };
        let (status, err) = strategy_call(&api, method, &id, &body);
        assert_eq!((status, err["code"].as_str()), (404, Some("NOT_FOUND")), "{method}: {err}");
    }
}

#[test]
#[ignore = "needs the local stack: infra/local.sh up"]
fn jobs_from_a_strategy() {
    let api = fresh_client("st-jobs");
    let s = create_strategy(&api, &strategy_body("ma"));
    let id = id_of(&s);
    let body = json!({"strategy_id": id, "start": "2024-01-01T00:00:00Z", "end": "2024-03-01T00:00:00Z",
                      "params": {"fast": 8, "slow": 21}});
    let (status, job) = api.create(&body);
    assert_eq!(status, 201, "{job}");
    assert_eq!(job["strategy_version"], 1);
    assert_eq!(
        job["config"],
        json!({"template_id": "tpl_ma_cross", "params": {"fast": 8, "slow": 21, "direction": "long", "fraction": "1"},
               "symbols": ["BTCUSDT"], "timeframe": "1h", "start": "2024-01-01T00:00:00Z",
               "end": "2024-03-01T00:00:00Z", "capital": "10000.00", "leverage": 1, "fee_model": "fixed_bps",
               "fee_bps": "5", "strategy_id": id})
    );
    let job_id = id_of(&job);
    let done = api.wait_done(&job_id);
    assert_eq!((done["config"].clone(), done["strategy_version"].clone()), (job["config"].clone(), json!(1)));

    // A field missing from both the strategy and the body.
    let (status, err) = api.create(&json!({"strategy_id": id, "start": "2024-01-01T00:00:00Z"}));
    assert_eq!((status, err["message"].as_str()), (400, Some("end: is required")), "{err}");

    // A PATCH: new jobs get the new version; the old job keeps its config.
    let (status, _) = strategy_call(&api, Method::Patch, &id, &json!({"config": {"capital": "2500"}}));
    assert_eq!(status, 200);
    let (status, job2) = api.create(&body);
    assert_eq!(status, 201, "{job2}");
    assert_eq!((job2["strategy_version"].clone(), job2["config"]["capital"].clone()), (json!(2), json!("2500")));
    assert_eq!(api.get(&job_id)["config"], job["config"]);

    // Deleted: the jobs stay readable and listed; the strategy is unusable.
    assert_eq!(strategy_call(&api, Method::Delete, &id, &Value::Null).0, 204);
    assert_eq!(api.get(&job_id)["config"], job["config"]);
    assert_eq!(api.get(&id_of(&job2))["strategy_version"], 2);
    let listed = api.list(&[("limit", "100")]);
    assert!(listed["data"].as_array().unwrap().iter().any(|j| j["id"] == json!(job_id) && j["strategy_version"] == 1));
    let (status, err) = api.create(&body);
    assert_eq!((status, err["code"].as_str()), (409, Some("INVALID_STATE")), "{err}");
    api.wait_done(&id_of(&job2));
}

#[test]
#[ignore = "needs the local stack: infra/local.sh up"]
fn unusable_and_foreign_strategies() {
    let (alice, bob) = (fresh_client("st-alice"), fresh_client("st-bob"));
    let bobs = id_of(&create_strategy(&bob, &strategy_body("bob's")));
    let gone = id_of(&create_strategy(&alice, &strategy_body("gone")));
    assert_eq!(strategy_call(&alice, Method::Delete, &gone, &Value::Null).0, 204);
    let mut messages = vec![];
    for sid in [bobs.as_str(), gone.as_str(), "st_00000000"] {
        let (status, err) = alice.create(&json!({"strategy_id": sid, "start": "2024-01-01T00:00:00Z",
                                                 "end": "2024-03-01T00:00:00Z"}));
        assert_eq!((status, err["code"].as_str()), (409, Some("INVALID_STATE")), "{err}");
        messages.push(err["message"].as_str().unwrap().replace(sid, "ID"));
    }
    assert!(messages.windows(2).all(|w| w[0] == w[1]), "one message for all: {messages:?}");

    for method in [Method::Get, Method::Patch, Method::Delete] {
        let body = if method == Method::Patch { json!({"name": "mine now"}) } else { Value::Null };
        let (status, err) = strategy_call(&alice, method, &bobs, &body);
        assert_eq!(
            (status, err.clone()),
            (404, json!({"code": "NOT_FOUND", "message": format!("no strategy {bobs}")}))
        );
    }
    let listed = alice.call(Method::Get, "/v1/strategies", &[], b"").1;
    assert!(!listed["data"].as_array().unwrap().iter().any(|s| s["id"] == json!(bobs)));
    let (status, theirs) = strategy_call(&bob, Method::Get, &bobs, &Value::Null);
    assert_eq!((status, theirs["version"].clone(), theirs["name"].clone()), (200, json!(1), json!("bob's")));
}

#[test]
#[ignore = "needs the local stack: infra/local.sh up"]
fn the_list_walks_with_cursors() {
    let api = fresh_client("st-list");
    let ids: Vec<String> = (0..5).map(|i| id_of(&create_strategy(&api, &strategy_body(&format!("s{i}"))))).collect();
    // Updating the first makes it the newest.
    std::thread::sleep(std::time::Duration::from_millis(5));
    assert_eq!(strategy_call(&api, Method::Patch, &ids[0], &json!({"name": "first"})).0, 200);
    let mut walked = vec![];
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut query = vec![("limit", "2")];
        if let Some(c) = &cursor {
            query.push(("cursor", c.as_str()));
        }
        let (status, page) = api.call(Method::Get, "/v1/strategies", &query, b"");
        assert_eq!(status, 200, "{page}");
        walked.extend(page["data"].as_array().unwrap().iter().map(id_of));
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(walked[0], ids[0]);
    let mut rest = walked[1..].to_vec();
    rest.sort();
    let mut want = ids[1..].to_vec();
    want.sort();
    assert_eq!(rest, want);
    let other = fresh_client("st-list-other");
    let c = cursor.unwrap_or_default();
    let first = api.call(Method::Get, "/v1/strategies", &[("limit", "1")], b"").1;
    let c = first["next_cursor"].as_str().map(str::to_string).unwrap_or(c);
    let (status, err) = other.call(Method::Get, "/v1/strategies", &[("cursor", c.as_str())], b"");
    assert_eq!((status, err["code"].as_str()), (400, Some("INVALID_PARAMETER")));
}

#[test]
#[ignore = "needs the local stack: infra/local.sh up"]
fn the_command_line() {
    let api = fresh_client("st-cli");
    let dir = tempfile::tempdir().unwrap();
    let pipai = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pipai"))
            .args(args)
            .env("PIPAI_API_URL", std::env::var("PIPAI_API_URL").unwrap_or_else(|_| "http://127.0.0.1:3000".into()))
            .env("PIPAI_API_KEY", api.key())
            .env("PIPAI_API_SECRET", api.secret())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "{args:?}: {text} {}", String::from_utf8_lossy(&out.stderr));
        text
    };
    let file = dir.path().join("s.json");
    std::fs::write(&file, strategy_body("cli").to_string()).unwrap();
    let created: Value = serde_json::from_str(&pipai(&["strategies", "create", file.to_str().unwrap()])).unwrap();
    let id = id_of(&created);
    let patch = dir.path().join("p.json");
    std::fs::write(&patch, json!({"name": "cli v2"}).to_string()).unwrap();
    let updated: Value = serde_json::from_str(&pipai(&["strategies", "update", &id, patch.to_str().unwrap()])).unwrap();
    assert_eq!((updated["version"].clone(), updated["name"].clone()), (json!(2), json!("cli v2")));
    assert!(pipai(&["strategies", "list", "--limit", "5"]).contains(&id));
    let got: Value = serde_json::from_str(&pipai(&["strategies", "get", &id])).unwrap();
    assert_eq!(got, updated);
    let out = pipai(&[
        "jobs",
        "submit",
        "--strategy",
        &id,
        "--start",
        "2024-01-01T00:00:00Z",
        "--end",
        "2024-02-01T00:00:00Z",
        "--params",
        r#"{"fast": 3, "slow": 9}"#,
        "--capital",
        "777",
    ]);
    let job_id = out.split_whitespace().nth(1).unwrap().to_string();
    let job = api.get(&job_id);
    assert_eq!(
        (
            job["config"]["strategy_id"].clone(),
            job["config"]["capital"].clone(),
            job["config"]["params"]["slow"].clone()
        ),
        (json!(id), json!("777"), json!(9))
    );
    assert_eq!(job["strategy_version"], 2);
    assert!(pipai(&["strategies", "delete", &id]).contains("deleted"));
    api.wait_done(&job_id);
}
