//! Market-data benchmark against moto: ingest throughput (rows/second) through the real ingest
//! path, and load time and peak memory for 1 and 5 years of 1m bars of one symbol.
//!
//! Run: `cargo bench -p pipai --bench market_data` (prints a table; no timing assertions).
//!
//! Uses the moto of the environment when `AWS_ENDPOINT_URL`, `MARKET_DATA_BUCKET` and
//! `MARKET_CATALOG_TABLE` are set (e.g. after `. .local/env`: then the bench writes a
//! `BENCH…` symbol into that stack's bucket and catalog); otherwise it starts a private moto on a
//! free port with the project's scripts (`infra/moto.sh`, `infra/create_resources.py`), as the
//! moto tests of `pipai-aws` do, and stops it on exit.
//!
//! The bars are the BTCUSDT preset's (prices in cents around 42,000-100,000, volumes with
//! decimals: the size and compressibility of exchange data), 1825 days from 2024-01-01, so
//! "5 years" is exactly 2,628,000 1m bars and "1 year" 525,600.
mod common;
#[path = "../../shared/aws/tests/moto/private_moto.rs"]
mod private_moto;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pipai_aws::aws_config::Region;
use pipai_aws::S3MarketData;
use pipai_engine::time::DAY_MS;
use pipai_market_data::generate::{Preset, PRESET_ANCHOR_MS};
use pipai_market_data::layout::{partition_key, split_by_month};
use pipai_market_data::{read_klines, Bars, IngestPlan, Month, Timeframe};
use pipai_service::ports::MarketData;

use common::{LIVE, PEAK};

const YEAR_DAYS: i64 = 365;
/// Loads per window size (min/median/max over these).
const LOAD_RUNS: usize = 11;

fn main() {
    let moto = Moto::from_env_or_start();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    rt.block_on(bench(&moto));
}

async fn bench(moto: &Moto) {
    let sdk = pipai_aws::config_loader()
        .endpoint_url(&moto.vars["AWS_ENDPOINT_URL"])
        .region(Region::new(moto.vars.get("AWS_REGION").cloned().unwrap_or_else(|| "us-east-1".into())))
        .load()
        .await;
    let market = S3MarketData::from_lookup(&sdk, &|k| moto.vars.get(k).cloned()).expect("market-data settings");
    let symbol = format!("BENCH{}", std::process::id());
    let start = PRESET_ANCHOR_MS;
    let end = start + 5 * YEAR_DAYS * DAY_MS;
    let mut rows: Vec<[String; 4]> = Vec::new();

    // Ingest, the way `pipai data ingest` does it: files parsed strictly, a plan (validation,
    // months, derived 5m-1d), then the store: encode, PUT, catalog.
    let bars = Preset::btcusdt().generate(start, end);
    let first_year_end = start + YEAR_DAYS * DAY_MS;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let files = write_binance_months(dir.path(), &bars.slice(bars.window(start, first_year_end - 1)));
    let t = Instant::now();
    let mut parsed = Bars::default();
    for f in &files {
        let part = read_klines(f).expect("the bench's own CSV parses");
        pipai_market_data::layout::append(&mut parsed, &part);
    }
    let parse = t.elapsed();
    let csv_mb = files.iter().map(|f| std::fs::metadata(f).map_or(0, |m| m.len())).sum::<u64>() as f64 / 1e6;
    rows.push(throughput(&format!("parse 12 monthly Binance CSVs ({csv_mb:.0} MB)"), parsed.len(), parse, ""));
    drop(files);

    let t = Instant::now();
    let plan = IngestPlan::new(&symbol, Timeframe::M1, &parsed, true).expect("valid bars");
    let report = market.ingest(plan, true).await.expect("ingest into moto");
    let first = t.elapsed();
    rows.push(throughput(
        "ingest 1 year into moto (1m + derived)",
        report.rows,
        first,
        &format!("{} files, {:.1} MB", report.files, report.bytes as f64 / 1e6),
    ));
    rows.push(throughput("  end to end: files to catalog", report.rows, parse + first, ""));
    drop(parsed);

    let rest = bars.slice(bars.window(first_year_end, end));
    let t = Instant::now();
    let plan = IngestPlan::new(&symbol, Timeframe::M1, &rest, true).expect("valid bars");
    let report = market.ingest(plan, true).await.expect("ingest into moto");
    let elapsed = t.elapsed();
    let m1_bytes_per_month = {
        let months = split_by_month(&rest);
        // A full month (the first one of `rest` is a single day).
        let one = pipai_market_data::bars_to_parquet(&months[1].1).map_or(0, |b| b.len());
        format!("1m month file {:.0} KB", one as f64 / 1e3)
    };
    rows.push(throughput(
        "ingest 4 more years (1m + derived)",
        report.rows,
        elapsed,
        &format!("{} files, {:.1} MB; {m1_bytes_per_month}", report.files, report.bytes as f64 / 1e6),
    ));
    // What deriving the coarser timeframes costs: the same year without it.
    let plain_symbol = format!("{symbol}X");
    let year = bars.slice(bars.window(start, first_year_end - 1));
    let t = Instant::now();
    let plan = IngestPlan::new(&plain_symbol, Timeframe::M1, &year, false).expect("valid bars");
    let report = market.ingest(plan, true).await.expect("ingest into moto");
    rows.push(throughput(
        "ingest 1 year, 1m only (no derived)",
        report.rows,
        t.elapsed(),
        &format!("{} files", report.files),
    ));
    drop((year, rest, bars));

    // Loads: the engine's input for a window, from the catalog and the month files.
    let mut loads: Vec<[String; 4]> = Vec::new();
    for (label, tf, days) in [
        ("1 year of 1m", Timeframe::M1, YEAR_DAYS),
        ("5 years of 1m", Timeframe::M1, 5 * YEAR_DAYS),
        ("5 years of 1h (stored)", Timeframe::H1, 5 * YEAR_DAYS),
    ] {
        let window_end = start + days * DAY_MS - 1;
        // The first load also warms the connections; it is measured for memory only.
        let live = LIVE.load(Ordering::Relaxed);
        PEAK.store(live, Ordering::Relaxed);
        let bars = market.load_bars(&symbol, tf, start, window_end).await.expect("load");
        let peak = PEAK.load(Ordering::Relaxed) - live;
        let n = bars.len();
        let window_bytes = bars.heap_bytes();
        drop(bars);
        let mut times = Vec::with_capacity(LOAD_RUNS);
        for _ in 0..LOAD_RUNS {
            let t = Instant::now();
            let bars = market.load_bars(&symbol, tf, start, window_end).await.expect("load");
            times.push(t.elapsed());
            assert_eq!(bars.len(), n);
        }
        times.sort();
        loads.push([
            format!("{label}: {n} bars"),
            format!("{} / {} / {}", ms(times[0]), ms(times[LOAD_RUNS / 2]), ms(times[LOAD_RUNS - 1])),
            format!("{:.0} MB", peak as f64 / 1e6),
            format!("{:.2}x the bars' {:.0} MB", peak as f64 / window_bytes.max(1) as f64, window_bytes as f64 / 1e6),
        ]);
    }

    // Where the time of the 5-year load goes: the GETs alone (as the loader issues them, 16 at
    // a time), and decoding the files alone on one thread.
    let months: Vec<_> = Month::range(start, start + 5 * YEAR_DAYS * DAY_MS - 1);
    let mut gets = Vec::with_capacity(LOAD_RUNS);
    let mut decodes = Vec::with_capacity(LOAD_RUNS);
    let mut file_bytes = 0;
    for _ in 0..LOAD_RUNS {
        let t = Instant::now();
        let permits = Arc::new(tokio::sync::Semaphore::new(16));
        let mut set = tokio::task::JoinSet::new();
        for (i, month) in months.iter().enumerate() {
            let key = partition_key(&symbol, Timeframe::M1, *month).expect("a valid symbol");
            let (client, bucket, permits) = (market.s3_client().clone(), market.bucket().to_string(), permits.clone());
            set.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let out = client.get_object().bucket(bucket).key(key).send().await.expect("GetObject");
                (i, out.body.collect().await.expect("GetObject body").into_bytes())
            });
        }
        let mut files: Vec<_> = (0..months.len()).map(|_| None).collect();
        while let Some(joined) = set.join_next().await {
            let (i, body) = joined.expect("a GET task");
            files[i] = Some(body);
        }
        gets.push(t.elapsed());
        let files: Vec<_> = files.into_iter().flatten().collect();
        file_bytes = files.iter().map(|f| f.len()).sum::<usize>();
        let t = Instant::now();
        let mut bars = Bars::default();
        for f in files {
            pipai_market_data::parquet::append_bars_from_parquet(f, &mut bars).expect("a stored partition decodes");
        }
        decodes.push(t.elapsed());
    }
    for (label, mut times) in [
        (format!("  the {} GETs alone ({:.0} MB)", months.len(), file_bytes as f64 / 1e6), gets),
        (format!("  decoding the {} files, one thread", months.len()), decodes),
    ] {
        times.sort();
        loads.push([
            label,
            format!("{} / {} / {}", ms(times[0]), ms(times[LOAD_RUNS / 2]), ms(times[LOAD_RUNS - 1])),
            String::new(),
            String::new(),
        ]);
    }

    let mut out = String::new();
    let _ = writeln!(out, "\nmarket data against moto at {} ({} cores)", moto.vars["AWS_ENDPOINT_URL"], cores());
    table(&mut out, ["ingest", "rows", "rows/s", ""], &rows);
    let _ = writeln!(out);
    table(&mut out, ["load_bars", "min / median / max (ms)", "peak heap", "per bar held"], &loads);
    print!("{out}");
}

fn throughput(label: &str, rows: usize, d: Duration, note: &str) -> [String; 4] {
    [
        label.to_string(),
        format!("{rows} in {:.2} s", d.as_secs_f64()),
        format!("{:.0}", rows as f64 / d.as_secs_f64()),
        note.to_string(),
    ]
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e3)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn table(out: &mut String, head: [&str; 4], rows: &[[String; 4]]) {
    let mut width = head.map(str::len);
    for r in rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |out: &mut String, cells: [&str; 4]| {
        let _ = writeln!(
            out,
            "{:<w0$}  {:>w1$}  {:>w2$}  {}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            w0 = width[0],
            w1 = width[1],
            w2 = width[2]
        );
    };
    line(out, head);
    for r in rows {
        line(out, [&r[0], &r[1], &r[2], &r[3]]);
    }
}

/// Writes `bars` as Binance monthly kline CSVs (all 12 columns, microsecond times, no header).
fn write_binance_months(dir: &Path, bars: &Bars) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for (month, part) in split_by_month(bars) {
        let mut text = String::with_capacity(part.len() * 130);
        for i in 0..part.len() {
            let t = part.open_time[i] * 1000;
            let quote = part.volume[i] * part.close[i];
            let _ = writeln!(
                text,
                "{t},{:.8},{:.8},{:.8},{:.8},{:.8},{},{quote:.8},1234,{:.8},{:.8},0",
                part.open[i],
                part.high[i],
                part.low[i],
                part.close[i],
                part.volume[i],
                t + 59_999_999,
                part.volume[i] / 2.0,
                quote / 2.0
            );
        }
        let path = dir.join(format!("BTCUSDT-1m-{month}.csv"));
        std::fs::write(&path, text).expect("write a CSV");
        paths.push(path);
    }
    paths
}

/// The moto the bench talks to: from the environment, or a private one it started.
struct Moto {
    vars: HashMap<String, String>,
    /// The port of the private moto, stopped on drop.
    started: Option<u16>,
}

impl Moto {
    fn from_env_or_start() -> Moto {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        // The SDK reads credentials from the environment; moto accepts any.
        for (k, v) in [("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")] {
            if get(k).is_none() {
                std::env::set_var(k, v);
            }
        }
        let names = ["AWS_ENDPOINT_URL", "AWS_REGION", "MARKET_DATA_BUCKET", "MARKET_CATALOG_TABLE"];
        if names.iter().filter(|k| **k != "AWS_REGION").all(|k| get(k).is_some()) {
            let vars = names.iter().filter_map(|k| get(k).map(|v| (k.to_string(), v))).collect();
            return Moto { vars, started: None };
        }
        Moto::start()
    }

    fn start() -> Moto {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("the repository root");
        eprintln!("starting a private moto (infra/moto.sh)");
        let (port, vars) = private_moto::start(&repo);
        Moto { vars, started: Some(port) }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(port) = self.started {
            let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let _ = Command::new(repo.join("infra/moto.sh"))
                .arg("stop")
                .env("MOTO_PORT", port.to_string())
                .stdout(Stdio::null())
                .status();
        }
    }
}
