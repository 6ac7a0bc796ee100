//! S3MarketData: partitions and catalog written by the ingest side, read back by the worker side.

use std::time::Instant;

use pipai_aws::S3MarketData;
use pipai_market_data::layout::{partition_key, split_by_month};
use pipai_market_data::time::ymd_ms;
use pipai_market_data::{generate_1m, Bars, Coverage, Month, Timeframe};
use pipai_service::ports::{DataError, MarketData};

use crate::common::{moto, sdk, unique};

async fn market() -> S3MarketData {
    S3MarketData::from_lookup(&sdk().await, &moto().lookup()).expect("market config")
}

fn symbol() -> String {
    unique("T").to_uppercase()
}

async fn put_all(market: &S3MarketData, symbol: &str, bars: &Bars) {
    for (month, part) in split_by_month(bars) {
        market.put_month(symbol, Timeframe::M1, month, &part, true).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn months_round_trip_across_boundaries_and_gaps() {
    let market = market().await;
    let sym = symbol();
    let jan_feb = generate_1m(7, 100.0, ymd_ms(2024, 1, 30), ymd_ms(2024, 2, 2));
    put_all(&market, &sym, &jan_feb).await;
    assert_eq!(
        market.coverage(&sym, Timeframe::M1).await.unwrap(),
        Some(Coverage::from_bars(&sym, Timeframe::M1, &jan_feb).unwrap())
    );
    assert_eq!(market.coverage(&sym, Timeframe::H1).await.unwrap(), None);

    // Across the month boundary, bounds inclusive.
    let (s, e) = (ymd_ms(2024, 1, 31) + 12 * 3_600_000, ymd_ms(2024, 2, 1) + 12 * 3_600_000);
    let got = market.load_bars(&sym, Timeframe::M1, s, e).await.unwrap();
    assert_eq!(got, jan_feb.slice(jan_feb.window(s, e)));
    assert_eq!((got.open_time[0], *got.open_time.last().unwrap()), (s, e));
    assert_eq!(market.load_bars(&sym, Timeframe::M1, 0, i64::MAX / 2).await.unwrap(), jan_feb);
    assert!(market.load_bars(&sym, Timeframe::M1, 0, ymd_ms(2024, 1, 1)).await.unwrap().is_empty());

    // April, after a gap: March has no partition and is not asked for.
    let april = generate_1m(8, 120.0, ymd_ms(2024, 4, 10), ymd_ms(2024, 4, 11));
    put_all(&market, &sym, &april).await;
    let cov = market.coverage(&sym, Timeframe::M1).await.unwrap().unwrap();
    assert_eq!(cov.gaps.len(), 1);
    assert_eq!((cov.first_open_time, cov.last_open_time), (jan_feb.open_time[0], *april.open_time.last().unwrap()));
    let got = market.load_bars(&sym, Timeframe::M1, ymd_ms(2024, 2, 1), ymd_ms(2024, 5, 1)).await.unwrap();
    let feb = jan_feb.slice(jan_feb.window(ymd_ms(2024, 2, 1), i64::MAX));
    assert_eq!(got.len(), feb.len() + april.len());
    assert_eq!(got.open_time[feb.len()], april.open_time[0]);
    got.validate().unwrap();

    let catalog = market.catalog().await.unwrap();
    assert!(catalog.contains(&(cov.clone(), true)));

    // A partition the catalog promises but S3 does not have.
    let feb_key = partition_key(&sym, Timeframe::M1, "2024-02".parse::<Month>().unwrap()).unwrap();
    market.s3_client().delete_object().bucket(market.bucket()).key(&feb_key).send().await.unwrap();
    match market.load_bars(&sym, Timeframe::M1, s, e).await {
        Err(DataError::Unavailable(m)) => assert!(m.contains(&feb_key) && m.contains("missing"), "{m}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }

    // put_coverage replaces the item.
    let jan_only =
        Coverage::from_bars(&sym, Timeframe::M1, &jan_feb.slice(jan_feb.window(0, ymd_ms(2024, 2, 1) - 1))).unwrap();
    market.put_coverage(&jan_only, false).await.unwrap();
    assert_eq!(market.coverage(&sym, Timeframe::M1).await.unwrap(), Some(jan_only.clone()));
    assert!(market.catalog().await.unwrap().contains(&(jan_only.clone(), false)));

    // A catalog that promises more bars than the file holds.
    let wider = Coverage { first_open_time: jan_only.first_open_time - 86_400_000, ..jan_only };
    market.put_coverage(&wider, false).await.unwrap();
    match market.load_bars(&sym, Timeframe::M1, 0, ymd_ms(2024, 1, 31)).await {
        Err(DataError::Unavailable(m)) => assert!(m.contains("bars where the catalog's coverage says"), "{m}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn unknown_series_is_unavailable() {
    let market = market().await;
    match market.load_bars(&symbol(), Timeframe::H4, 0, 1_000_000_000).await {
        Err(DataError::Unavailable(m)) => assert!(m.contains("no 4h bars"), "{m}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(matches!(market.load_bars("not a symbol", Timeframe::M1, 0, 1).await, Err(DataError::Unavailable(_))));
    let bars = generate_1m(1, 10.0, ymd_ms(2024, 1, 31), ymd_ms(2024, 2, 1) + 60_000);
    let month: Month = "2024-01".parse().unwrap();
    assert!(market.put_month(&symbol(), Timeframe::M1, month, &bars, true).await.is_err(), "bars outside the month");
    assert!(market.put_month(&symbol(), Timeframe::M1, month, &Bars::default(), true).await.is_err(), "no bars");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ingests_merge_their_coverage() {
    let market = market().await;
    let sym = symbol();
    let bars = generate_1m(3, 50.0, ymd_ms(2023, 7, 1), ymd_ms(2023, 7, 1) + 6 * 31 * 86_400_000);
    let mut set = tokio::task::JoinSet::new();
    for (month, part) in split_by_month(&bars) {
        let (market, sym) = (market.clone(), sym.clone());
        set.spawn(async move { market.put_month(&sym, Timeframe::M1, month, &part, true).await });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap().unwrap();
    }
    assert_eq!(
        market.coverage(&sym, Timeframe::M1).await.unwrap(),
        Some(Coverage::from_bars(&sym, Timeframe::M1, &bars).unwrap())
    );
}

/// `cargo test -p pipai-aws --release --test moto -- --ignored --nocapture load_bars_benchmark`
///
/// Writes 5 years of 1m bars (60 partitions), then times `load_bars` of all of it at several
/// download concurrencies, and, for comparison, the 60 GETs alone and decoding on one thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run in release"]
async fn load_bars_benchmark() {
    let market = market().await;
    let sym = symbol();
    let (start, end) = (ymd_ms(2020, 1, 1), ymd_ms(2025, 1, 1));
    let t = Instant::now();
    let bars = generate_1m(11, 100.0, start, end);
    let parts = split_by_month(&bars);
    let mut set = tokio::task::JoinSet::new();
    for (month, part) in parts.clone() {
        let (market, sym) = (market.clone(), sym.clone());
        set.spawn(async move { market.put_month(&sym, Timeframe::M1, month, &part, true).await });
        if set.len() >= 8 {
            set.join_next().await.unwrap().unwrap().unwrap();
        }
    }
    while let Some(r) = set.join_next().await {
        r.unwrap().unwrap();
    }
    println!("ingest: {} bars in {} partitions, {:?}", bars.len(), parts.len(), t.elapsed());
    assert_eq!(market.load_bars(&sym, Timeframe::M1, start, end).await.unwrap(), bars);

    let median = |mut v: Vec<std::time::Duration>| {
        v.sort();
        (v[0], v[v.len() / 2], v[v.len() - 1])
    };
    for concurrency in [4, 8, 16, 32] {
        let market = market.clone().with_fetch_concurrency(concurrency);
        let mut times = Vec::new();
        for _ in 0..9 {
            let t = Instant::now();
            let got = market.load_bars(&sym, Timeframe::M1, start, end).await.unwrap();
            times.push(t.elapsed());
            assert_eq!(got.len(), bars.len());
        }
        let (min, med, max) = median(times);
        println!("load_bars, 5 years of 1m, {concurrency:2} GETs in flight: min {min:?}, median {med:?}, max {max:?}");
    }

    // Where the time goes: the downloads alone, and decoding alone on one thread.
    let mut fetches = Vec::new();
    let mut decodes = Vec::new();
    let mut mb = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for (month, _) in &parts {
            let key = partition_key(&sym, Timeframe::M1, *month).unwrap();
            let (client, bucket) = (market.s3_client().clone(), market.bucket().to_string());
            set.spawn(async move {
                client
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .unwrap()
                    .body
                    .collect()
                    .await
                    .unwrap()
                    .into_bytes()
            });
        }
        let mut files = Vec::new();
        while let Some(r) = set.join_next().await {
            files.push(r.unwrap());
        }
        fetches.push(t.elapsed());
        mb = files.iter().map(|f| f.len()).sum::<usize>() / 1_000_000;
        let t = Instant::now();
        let mut decoded = Bars::default();
        for f in files {
            pipai_market_data::parquet::append_bars_from_parquet(f, &mut decoded).unwrap();
        }
        decodes.push(t.elapsed());
    }
    let (min, med, _) = median(fetches);
    println!("  for comparison: the 60 GETs alone ({mb} MB, all at once): min {min:?}, median {med:?}");
    let (min, med, _) = median(decodes);
    println!("  for comparison: decoding the 60 files on one thread: min {min:?}, median {med:?}");
}
