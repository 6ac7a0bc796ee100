//! KeyStore, RequestLog, SQS, S3 artifacts (whole and ranged), the master key, configuration errors.

use aws_sdk_dynamodb::types::AttributeValue;
use pipai_aws::{load_master_key_from_lookup, ConfigError, DynamoStore, S3Results, SqsQueue};
use pipai_service::model::{ApiKeyRecord, KeyStatus, QueueMessage};
use pipai_service::ports::*;
use pipai_service::secrets::MasterKey;
use pipai_service::JobId;

use crate::common::{moto, now_ms, sdk, unique, unique_key, unique_user};

async fn store() -> DynamoStore {
    DynamoStore::from_lookup(&sdk().await, &moto().lookup()).expect("store config")
}

#[tokio::test]
async fn key_store() {
    let store = store().await;
    let key = ApiKeyRecord {
        key_id: unique_key(),
        user_id: unique_user(),
        secret_ciphertext: "c2VjcmV0".into(),
        status: KeyStatus::Active,
        created_at_ms: now_ms(),
        label: "ci".into(),
    };
    assert_eq!(store.get_key(&key.key_id).await.unwrap(), None);
    assert!(store.put_key(&key).await.unwrap());
    assert!(!store.put_key(&ApiKeyRecord { label: "again".into(), ..key.clone() }).await.unwrap());
    assert_eq!(store.get_key(&key.key_id).await.unwrap(), Some(key.clone()));

    let second = ApiKeyRecord { key_id: unique_key(), ..key.clone() };
    assert!(store.put_key(&second).await.unwrap());
    let listed = store.list_keys().await.unwrap();
    assert!(listed.contains(&key) && listed.contains(&second));
    assert!(listed.windows(2).all(|w| w[0].key_id < w[1].key_id), "sorted by id");

    assert!(store.set_key_status(&key.key_id, KeyStatus::Disabled).await.unwrap());
    assert_eq!(store.get_key(&key.key_id).await.unwrap().unwrap().status, KeyStatus::Disabled);
    assert!(!store.set_key_status(&unique_key(), KeyStatus::Disabled).await.unwrap());
}

#[tokio::test]
async fn replay_guard() {
    let store = store().await;
    let key = unique_key();
    let soon = now_ms() + 300_000;
    assert!(store.remember_signature(&key, "abc123", soon).await.unwrap());
    assert!(!store.remember_signature(&key, "abc123", soon).await.unwrap(), "a replay");
    assert!(store.remember_signature(&key, "def456", soon).await.unwrap());
    assert!(store.remember_signature(&unique_key(), "abc123", soon).await.unwrap(), "another key");

    // moto keeps expired items (TTL is not enforced): they must count as absent.
    let past = now_ms() - 10_000;
    assert!(store.remember_signature(&key, "old", past).await.unwrap());
    assert!(store.remember_signature(&key, "old", soon).await.unwrap(), "expired item is absent");
    assert!(!store.remember_signature(&key, "old", soon).await.unwrap());
}

#[tokio::test]
async fn weight_counters() {
    let store = store().await;
    let key = unique_key();
    let window = (now_ms() / 60_000) * 60_000;
    assert_eq!(store.add_weight(&key, window, 5).await.unwrap(), 5);
    assert_eq!(store.add_weight(&key, window, 20).await.unwrap(), 25);
    assert_eq!(store.add_weight(&key, window + 60_000, 2).await.unwrap(), 2);
    let item = store
        .client()
        .get_item()
        .table_name(moto().var("REQUESTS_TABLE"))
        .key("pk", AttributeValue::S(format!("weight#{key}#{window}")))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(item["expires_at"].as_n().unwrap().parse::<i64>().unwrap(), window / 1000 + 3600);
}

#[tokio::test]
async fn sqs_enqueue_is_received() {
    // A queue of this test's own: the shared JobsQueue may have consumers (a local harness).
    let sdk = sdk().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let url = sqs.create_queue().queue_name(unique("pipai-test-")).send().await.unwrap().queue_url.unwrap();
    let queue = SqsQueue::from_lookup(&sdk, &|k: &str| (k == "JOBS_QUEUE_URL").then(|| url.clone())).unwrap();
    queue.enqueue(&"bt_00c0ffee".parse().unwrap()).await.unwrap();
    let got =
        sqs.receive_message().queue_url(&url).max_number_of_messages(10).wait_time_seconds(2).send().await.unwrap();
    let bodies: Vec<&str> = got.messages().iter().filter_map(|m| m.body()).collect();
    assert_eq!(bodies, [QueueMessage::body(&"bt_00c0ffee".parse().unwrap()).as_str()]);
    assert_eq!(QueueMessage::job_id_of(bodies[0]).map(String::from).as_deref(), Some("bt_00c0ffee"));
    sqs.delete_queue().queue_url(&url).send().await.unwrap();

    let missing =
        SqsQueue::from_lookup(&sdk, &|k: &str| (k == "JOBS_QUEUE_URL").then(|| format!("{url}-gone"))).unwrap();
    let err = missing.enqueue(&"bt_00c0ffee".parse().unwrap()).await.unwrap_err();
    assert!(
        pipai_service::error::report(&err).contains("sqs SendMessage on")
            && pipai_service::error::report(&err).contains("-gone"),
        "{err}"
    );
}

#[tokio::test]
async fn s3_artifacts_round_trip() {
    let sdk = sdk().await;
    let results = S3Results::from_lookup(&sdk, &moto().lookup()).unwrap();
    let job: pipai_service::JobId = JobId::random();
    let body = br#"{"equity_curve":[1,2,3]}"#.to_vec();
    results.put_artifact(&job, "equity_curve.json", body.clone(), "application/json").await.unwrap();
    assert_eq!(results.get_artifact(&job, "equity_curve.json").await.unwrap(), Some(body));
    let head = results
        .client()
        .head_object()
        .bucket(moto().var("RESULTS_BUCKET"))
        .key(format!("results/{job}/equity_curve.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("application/json"));
    // Overwrite (a re-run writes the same key).
    results.put_artifact(&job, "equity_curve.json", b"[]".to_vec(), "application/json").await.unwrap();
    assert_eq!(results.get_artifact(&job, "equity_curve.json").await.unwrap(), Some(b"[]".to_vec()));
    // Large enough for the SDK's checksums and a multi-frame body.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    results.put_artifact(&job, "bar_equity.csv", big.clone(), "text/csv").await.unwrap();
    assert_eq!(results.get_artifact(&job, "bar_equity.csv").await.unwrap(), Some(big));

    assert_eq!(results.get_artifact(&job, "trades.json").await.unwrap(), None);
    assert!(S3Results::key("../x", "y").is_err());
    assert!(results.put_artifact(&job, "a/b", vec![], "text/plain").await.is_err());

    let nowhere =
        S3Results::from_lookup(&sdk, &|k: &str| (k == "RESULTS_BUCKET").then(|| unique("no-such-bucket-"))).unwrap();
    let err = nowhere.get_artifact(&job, "result.json").await.unwrap_err();
    assert!(pipai_service::error::report(&err).starts_with("s3 GetObject on s3://no-such-bucket-"), "{err}");
}

#[tokio::test]
async fn s3_ranged_reads_return_exactly_the_bytes_asked_for() {
    let results = S3Results::from_lookup(&sdk().await, &moto().lookup()).unwrap();
    let job = JobId::random();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    results.put_artifact(&job, "trades.json", big.clone(), "application/json").await.unwrap();
    for range in [0..1, 0..1_000, 999..1_001, 1_234_567..2_345_678, 2_999_999..3_000_000, 0..3_000_000] {
        let got = results.get_artifact_range(&job, "trades.json", range.clone()).await.unwrap();
        assert_eq!(got.as_deref(), Some(&big[range.start as usize..range.end as usize]), "{range:?}");
    }
    // Past the end, empty, or no such object.
    for bad in [2_999_999..3_000_001, 3_000_000..3_000_001, 10..10] {
        assert!(results.get_artifact_range(&job, "trades.json", bad.clone()).await.is_err(), "{bad:?}");
    }
    assert_eq!(results.get_artifact_range(&job, "equity_curve.json", 0..10).await.unwrap(), None);
}

#[tokio::test]
async fn master_key_from_ssm_or_env() {
    let sdk = sdk().await;
    let m = moto();
    let param = m.var("API_KEY_MASTER_KEY_PARAM");
    let stored = aws_sdk_ssm::Client::new(&sdk)
        .get_parameter()
        .name(&param)
        .with_decryption(true)
        .send()
        .await
        .unwrap()
        .parameter
        .unwrap()
        .value
        .unwrap();
    let key = load_master_key_from_lookup(&sdk, &m.lookup()).await.unwrap();
    assert_eq!(key.to_base64(), MasterKey::from_base64(&stored).unwrap().to_base64());

    let own = MasterKey::generate();
    let with_env = |k: &str| if k == "API_KEY_MASTER_KEY" { Some(own.to_base64()) } else { m.vars.get(k).cloned() };
    assert_eq!(load_master_key_from_lookup(&sdk, &with_env).await.unwrap().to_base64(), own.to_base64());

    let bad = |k: &str| (k == "API_KEY_MASTER_KEY").then(|| "c2hvcnQ=".to_string());
    assert!(matches!(load_master_key_from_lookup(&sdk, &bad).await, Err(ConfigError::Invalid { .. })));
    let none = |_: &str| None;
    assert_eq!(
        load_master_key_from_lookup(&sdk, &none).await.unwrap_err(),
        ConfigError::Missing("API_KEY_MASTER_KEY_PARAM")
    );
    let missing_param = |k: &str| (k == "API_KEY_MASTER_KEY_PARAM").then(|| "/pipai/no/such/param".to_string());
    let err = load_master_key_from_lookup(&sdk, &missing_param).await.unwrap_err();
    assert!(matches!(&err, ConfigError::Invalid { reason, .. } if reason.contains("/pipai/no/such/param")), "{err}");
}

#[tokio::test]
async fn config_errors_name_the_variable() {
    let sdk = sdk().await;
    let m = moto();
    let without = |name: &'static str| move |k: &str| if k == name { None } else { m.vars.get(k).cloned() };
    assert_eq!(
        DynamoStore::from_lookup(&sdk, &without("USERS_TABLE")).unwrap_err(),
        ConfigError::Missing("USERS_TABLE")
    );
    assert_eq!(
        SqsQueue::from_lookup(&sdk, &without("JOBS_QUEUE_URL")).unwrap_err(),
        ConfigError::Missing("JOBS_QUEUE_URL")
    );
    assert_eq!(
        S3Results::from_lookup(&sdk, &without("RESULTS_BUCKET")).unwrap_err(),
        ConfigError::Missing("RESULTS_BUCKET")
    );
    assert_eq!(
        pipai_aws::S3MarketData::from_lookup(&sdk, &without("MARKET_CATALOG_TABLE")).unwrap_err(),
        ConfigError::Missing("MARKET_CATALOG_TABLE")
    );
    let bad_days = |k: &str| if k == "RESULT_RETENTION_DAYS" { Some("0".into()) } else { m.vars.get(k).cloned() };
    assert!(matches!(DynamoStore::from_lookup(&sdk, &bad_days), Err(ConfigError::Invalid { .. })));
}
