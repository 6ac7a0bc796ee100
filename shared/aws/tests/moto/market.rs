//! S3MarketData: partitions and catalog written by the ingest side, read back by the worker side.

use pipai_aws::S3MarketData;
use pipai_market_data::ingest::derived_timeframes;
use pipai_market_data::layout::{partition_key, split_by_month};
use pipai_market_data::time::ymd_ms;
use pipai_market_data::{generate_1m, resample, Bars, Coverage, IngestPlan, Month, Timeframe};
use pipai_service::ports::{DataError, MarketData};
use pipai_service::worker::load_job_bars;

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

const M: i64 = 60_000;
const H: i64 = 60 * M;

/// Everything stored for `sym` at `tf`, read back.
async fn stored(market: &S3MarketData, sym: &str, tf: Timeframe) -> Bars {
    market.load_bars(sym, tf, i64::MIN / 4, i64::MAX / 4).await.unwrap()
}

/// `bars` without the ones whose open time is in `[from, to]`.
fn without(bars: &Bars, from: i64, to: i64) -> Bars {
    let keep: Vec<_> =
        (0..bars.len()).map(|i| bars.get(i)).filter(|b| b.open_time < from || b.open_time > to).collect();
    Bars::from_bars(&keep)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_writes_derived_series_and_a_reingest_is_recatalogued() {
    let market = market().await.with_write_concurrency(3);
    let sym = symbol();
    // 1m from Jan 30 12:34 to Feb 2 00:10: two months, partial at both ends.
    let bars = generate_1m(21, 300.0, ymd_ms(2024, 1, 30) + 12 * H + 34 * M, ymd_ms(2024, 2, 2) + 11 * M);
    let plan = IngestPlan::new(&sym, Timeframe::M1, &bars, true).unwrap();
    let report = market.ingest(plan.clone(), false).await.unwrap();
    assert_eq!((report.rows, report.months, report.files), (bars.len(), 2, 12));
    assert!(report.bytes > 0);
    assert_eq!(report.coverage.len(), 6);
    for tf in Timeframe::ALL {
        let expected = if tf == Timeframe::M1 { bars.clone() } else { resample(&bars, tf) };
        let cov = Coverage::from_bars(&sym, tf, &expected).unwrap();
        assert_eq!(market.coverage(&sym, tf).await.unwrap(), Some(cov.clone()), "{tf}");
        assert!(report.coverage.contains(&cov), "{tf}");
        assert_eq!(stored(&market, &sym, tf).await, expected, "{tf}");
    }
    assert!(market.catalog().await.unwrap().iter().filter(|(c, _)| c.symbol == sym).all(|(_, synthetic)| !synthetic));

    // The same plan again: the same files and catalog.
    let again = market.ingest(plan, false).await.unwrap();
    assert_eq!(again.coverage, report.coverage);
    assert_eq!(stored(&market, &sym, Timeframe::M1).await, bars);

    // Feb 1 again, without 06:00-06:29: the catalog shows the gap (a union would not), the 1h
    // bar of 06:00 is rebuilt from what is left, and the 5m bars of that half hour are gone.
    let feb1 = ymd_ms(2024, 2, 1);
    let day = bars.slice(bars.window(feb1, feb1 + 24 * H - 1));
    let holed = without(&day, feb1 + 6 * H, feb1 + 6 * H + 29 * M);
    market.ingest(IngestPlan::new(&sym, Timeframe::M1, &holed, true).unwrap(), false).await.unwrap();
    let expected = without(&bars, feb1 + 6 * H, feb1 + 6 * H + 29 * M);
    let minutes = market.coverage(&sym, Timeframe::M1).await.unwrap().unwrap();
    assert_eq!(minutes.gaps.len(), 1);
    assert_eq!((minutes.gaps[0].from_ms, minutes.gaps[0].to_ms), (feb1 + 6 * H, feb1 + 6 * H + 29 * M));
    assert_eq!(stored(&market, &sym, Timeframe::M1).await, expected);
    let fives = market.coverage(&sym, Timeframe::M5).await.unwrap().unwrap();
    assert_eq!((fives.gaps[0].from_ms, fives.gaps[0].to_ms), (feb1 + 6 * H, feb1 + 6 * H + 25 * M));
    for tf in derived_timeframes(Timeframe::M1) {
        assert_eq!(stored(&market, &sym, tf).await, resample(&expected, tf), "{tf}");
    }
    let err = market.coverage(&sym, Timeframe::M1).await.unwrap().unwrap().check(feb1, feb1 + 12 * H).unwrap_err();
    assert!(err.to_string().contains("2024-02-01T06:00:00Z to 2024-02-01T06:29:00Z (30 bars)"), "{err}");

    // A later day on its own adds to February instead of replacing it.
    let feb3 = generate_1m(22, 310.0, ymd_ms(2024, 2, 3), ymd_ms(2024, 2, 4));
    market.ingest(IngestPlan::new(&sym, Timeframe::M1, &feb3, true).unwrap(), false).await.unwrap();
    let mut all = expected.clone();
    pipai_market_data::layout::append(&mut all, &feb3);
    assert_eq!(stored(&market, &sym, Timeframe::M1).await, all);
    let days = stored(&market, &sym, Timeframe::D1).await;
    assert_eq!(days, resample(&all, Timeframe::D1));
    assert_eq!(days.len(), 5, "Jan 30, Jan 31, Feb 1, Feb 2 (10 minutes), Feb 3");
    let minutes = market.coverage(&sym, Timeframe::M1).await.unwrap().unwrap();
    assert_eq!(minutes.gaps.len(), 2, "the half hour, and Feb 2 00:11 to Feb 2 23:59");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_use_a_stored_timeframe_or_derive_it_from_1m() {
    let market = market().await;
    // An exchange's 1h file: stored as 1h (and 4h, 1d), with its own catalog entries.
    let hourly_sym = symbol();
    let minutes = generate_1m(31, 80.0, ymd_ms(2024, 3, 30), ymd_ms(2024, 4, 3));
    let hours = resample(&minutes, Timeframe::H1);
    market.ingest(IngestPlan::new(&hourly_sym, Timeframe::H1, &hours, true).unwrap(), true).await.unwrap();
    assert_eq!(market.coverage(&hourly_sym, Timeframe::M1).await.unwrap(), None);
    let cov = market.coverage(&hourly_sym, Timeframe::H1).await.unwrap().unwrap();
    assert_eq!(cov, Coverage::from_bars(&hourly_sym, Timeframe::H1, &hours).unwrap());
    let catalog = market.catalog().await.unwrap();
    let listed: Vec<Timeframe> =
        catalog.iter().filter(|(c, _)| c.symbol == hourly_sym).map(|(c, _)| c.timeframe).collect();
    assert_eq!(listed, [Timeframe::H1, Timeframe::H4, Timeframe::D1]);
    assert!(catalog.iter().filter(|(c, _)| c.symbol == hourly_sym).all(|(_, synthetic)| *synthetic));
    let (s, e) = (ymd_ms(2024, 3, 31) + 5 * H, ymd_ms(2024, 4, 1) + 7 * H);
    let got = load_job_bars(&market, &hourly_sym, Timeframe::H1, s, e).await.unwrap();
    assert_eq!(got, hours.slice(hours.window(s, e)));
    let four = load_job_bars(&market, &hourly_sym, Timeframe::H4, s, e).await.unwrap();
    assert_eq!(four.open_time[0], ymd_ms(2024, 3, 31) + 8 * H, "the first 4h bar that opens in the window");
    match load_job_bars(&market, &hourly_sym, Timeframe::M15, s, e).await {
        Err(DataError::Unavailable(m)) => assert!(m.contains("no 15m bars") || m.contains("no 1m bars"), "{m}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }

    // Only 1m stored (written month by month, no derived series): 1h is derived on load,
    // from whole UTC hours, the first and last hour included.
    let minute_sym = symbol();
    put_all(&market, &minute_sym, &minutes).await;
    assert_eq!(market.coverage(&minute_sym, Timeframe::H1).await.unwrap(), None);
    let (s, e) = (ymd_ms(2024, 3, 31) + 5 * H + 30 * M, ymd_ms(2024, 4, 1) + 7 * H + 15 * M);
    let got = load_job_bars(&market, &minute_sym, Timeframe::H1, s, e).await.unwrap();
    // (It also returns the hour that opened before the window's start, 05:00, which the engine
    // skips like any bar outside the window.)
    assert_eq!(got.open_time[0], ymd_ms(2024, 3, 31) + 5 * H);
    let got = got.slice(got.window(s, e));
    let from_minutes = resample(
        &minutes.slice(minutes.window(ymd_ms(2024, 3, 31) + 6 * H, ymd_ms(2024, 4, 1) + 8 * H - 1)),
        Timeframe::H1,
    );
    assert_eq!(got, from_minutes);
    assert_eq!(
        (got.open_time[0], *got.open_time.last().unwrap()),
        (ymd_ms(2024, 3, 31) + 6 * H, ymd_ms(2024, 4, 1) + 7 * H)
    );
    // The same bars as the stored 1h series made from the same minutes.
    assert_eq!(got, hours.slice(hours.window(s, e)));
    let days =
        load_job_bars(&market, &minute_sym, Timeframe::D1, ymd_ms(2024, 3, 30), ymd_ms(2024, 4, 2)).await.unwrap();
    assert_eq!(days, resample(&minutes, Timeframe::D1).slice(0..4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingest_that_cannot_keep_stored_bars_fails_and_says_why() {
    let market = market().await;
    let sym = symbol();
    let march = generate_1m(41, 60.0, ymd_ms(2024, 3, 1), ymd_ms(2024, 4, 1));
    market.ingest(IngestPlan::new(&sym, Timeframe::M1, &march, false).unwrap(), false).await.unwrap();
    let key = partition_key(&sym, Timeframe::M1, "2024-03".parse::<Month>().unwrap()).unwrap();
    market.s3_client().delete_object().bucket(market.bucket()).key(&key).send().await.unwrap();
    // March 15 only: the rest of March must be kept, but its file is gone.
    let day = march.slice(march.window(ymd_ms(2024, 3, 15), ymd_ms(2024, 3, 16) - 1));
    let err = market.ingest(IngestPlan::new(&sym, Timeframe::M1, &day, false).unwrap(), false).await.unwrap_err();
    assert!(
        pipai_service::error::report(&err).contains(&key) && pipai_service::error::report(&err).contains("missing"),
        "{err}"
    );
    // Nothing was written: the catalog still says all of March.
    assert_eq!(
        market.coverage(&sym, Timeframe::M1).await.unwrap(),
        Some(Coverage::from_bars(&sym, Timeframe::M1, &march).unwrap())
    );
    // All of March again needs nothing kept, and repairs it.
    market.ingest(IngestPlan::new(&sym, Timeframe::M1, &march, false).unwrap(), false).await.unwrap();
    assert_eq!(stored(&market, &sym, Timeframe::M1).await, march);
}
