//! The webhook signer against docs/webhooks/delivery-example.json (the delivery the Python
//! snippet is tested on), `pipai webhooks verify`'s exit codes, and docs/webhooks.md's Rust
//! snippet, which is the function below.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

fn delivery() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/webhooks/delivery-example.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn header(d: &Value, name: &str) -> String {
    d["headers"][name].as_str().unwrap().to_string()
}

/// The timestamp, event id and signature headers of a delivery.
fn signed_headers(d: &Value) -> [String; 3] {
    ["X-PipAI-Timestamp", "X-PipAI-Event-Id", "X-PipAI-Signature"].map(|name| header(d, name))
}

// rust-snippet:start
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// True when the delivery is signed by `secret` (freshness: compare the timestamp with your clock).
pub fn verify_pipai_webhook(secret: &str, timestamp: &str, event_id: &str, raw_body: &[u8], signature: &str) -> bool {
    let string_to_sign = format!("PIPAI1-WEBHOOK\n{timestamp}\n{event_id}\n{}", hex::encode(Sha256::digest(raw_body)));
    let Ok(given) = hex::decode(signature) else { return false };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(string_to_sign.as_bytes());
    mac.verify_slice(&given).is_ok() // constant time
}
// rust-snippet:end

#[test]
fn the_service_signer_makes_the_example_deliverys_signature() {
    let d = delivery();
    let (secret, body) = (d["secret"].as_str().unwrap(), d["body"].as_str().unwrap().as_bytes());
    let event_id: pipai_service::webhook::EventId = header(&d, "X-PipAI-Event-Id").parse().unwrap();
    let ts: i64 = header(&d, "X-PipAI-Timestamp").parse().unwrap();
    let headers = pipai_service::webhook::signed_headers(secret, ts, &event_id, body);
    let signature = &headers.iter().find(|(k, _)| *k == "X-PipAI-Signature").unwrap().1;
    assert_eq!(signature, &header(&d, "X-PipAI-Signature"));
    let event: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(event["id"], event_id.as_str());
}

#[test]
fn the_documented_rust_snippet_is_this_one_and_verifies() {
    let d = delivery();
    let (secret, body) = (d["secret"].as_str().unwrap(), d["body"].as_str().unwrap().as_bytes());
    let [ts, evt, sig] = signed_headers(&d);
    assert!(verify_pipai_webhook(secret, &ts, &evt, body, &sig));
    assert!(!verify_pipai_webhook("other", &ts, &evt, body, &sig));
    let source = include_str!("webhooks_verify.rs");
    let code = source.split("// rust-snippet:start\n").nth(1).unwrap().split("// rust-snippet:end").next().unwrap();
    let doc = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/webhooks.md")).unwrap();
    assert!(doc.contains(code.trim()), "docs/webhooks.md's Rust snippet differs from this file's");
}

fn verify_cli(args: &[&str], body: &[u8]) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pipai"))
        .args(["webhooks", "verify"])
        .args(args)
        .env_remove("PIPAI_API_SECRET")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn pipai_webhooks_verify_exits_0_when_valid_and_2_when_not() {
    let d = delivery();
    let (secret, body) = (d["secret"].as_str().unwrap(), d["body"].as_str().unwrap().as_bytes());
    let [ts, evt, sig] = signed_headers(&d);
    let args = ["--secret", secret, "--timestamp", &ts, "--event-id", &evt, "--signature", &sig];
    let (code, text) = verify_cli(&args, body);
    assert_eq!(code, 0, "{text}");
    let (code, text) = verify_cli(&args, b"{\"tampered\":true}");
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("does not match"), "{text}");
    let mut stale = args.to_vec();
    stale.extend(["--tolerance", "300"]);
    let (code, text) = verify_cli(&stale, body);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("replay"), "{text}");
}
