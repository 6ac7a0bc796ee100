//! `pipai data ingest` of one year of 1m bars without the store: parse the year's 12 monthly
//! Binance CSV files, plan the ingest (1m plus the derived 5m, 15m, 1h, 4h, 1d), and build and
//! encode every month's Parquet partitions (what the store then uploads), as `pipai data ingest`
//! does: `IngestPlan::encode_month`, months one after another, then one month per core at a
//! time. Median of 5; prints rows/s, the CPU time of the whole ingest (both cores: what a loaded
//! machine does not inflate as much as wall time) and the load.
//!
//! Run: `cargo bench -p pipai-market-data --bench ingest` (or `infra/bench.sh run`).
use std::time::Duration;

use pipai_market_data::csv::{parse_csv, write_binance, TimeUnit};
use pipai_market_data::generate::{Preset, PRESET_ANCHOR_MS};
use pipai_market_data::layout::{append, bars_with_capacity};
use pipai_market_data::{split_by_month, Bars, IngestPlan, Timeframe};

mod common;
use common::{median, median_with, print_load, process_cpu};

/// The encoded partitions of months `indexes` of `plan`, as the store encodes them: (files, bytes).
fn encode_months(plan: &IngestPlan, indexes: impl Iterator<Item = usize>) -> (usize, usize) {
    let (mut files, mut bytes) = (0, 0);
    for index in indexes {
        for part in plan.encode_month(index, &[], &[]).expect("a fresh plan") {
            bytes += part.bytes.len();
            files += 1;
        }
    }
    (files, bytes)
}

/// Parses the monthly files (in order), plans and encodes the year on `threads` threads.
fn ingest(csvs: &[String], threads: usize) -> (usize, usize) {
    // As `pipai data ingest` reads several files: the columns sized from the first file.
    let total: usize = csvs.iter().map(String::len).sum();
    let mut bars = Bars::default();
    for csv in csvs {
        let part = parse_csv("month.csv", csv.as_bytes()).expect("own CSV").0;
        if bars.is_empty() {
            bars = bars_with_capacity((total as f64 * part.len() as f64 / csv.len() as f64 * 1.05) as usize);
        }
        append(&mut bars, &part);
    }
    let plan = IngestPlan::from_bars("BTCUSDT", Timeframe::M1, bars, true).expect("valid bars");
    let months = plan.months().len();
    std::thread::scope(|s| {
        let plan = &plan;
        let workers: Vec<_> =
            (0..threads).map(|t| s.spawn(move || encode_months(plan, (t..months).step_by(threads)))).collect();
        workers.into_iter().map(|w| w.join().expect("no panic")).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    })
}

fn main() {
    print_load();
    let bars = Preset::btcusdt().generate(PRESET_ANCHOR_MS, PRESET_ANCHOR_MS + 365 * 86_400_000);
    let csvs: Vec<String> =
        split_by_month(&bars).iter().map(|(_, part)| write_binance(part, TimeUnit::Millis)).collect();
    let mb = csvs.iter().map(String::len).sum::<usize>() as f64 / 1e6;
    // Where the time goes, one step at a time (one thread except the parser).
    let parsed = median(|| {
        csvs.iter().for_each(|csv| drop(parse_csv("month.csv", csv.as_bytes()).expect("own CSV")));
    });
    let plan = IngestPlan::new("BTCUSDT", Timeframe::M1, &bars, true).expect("valid bars");
    // The plan keeps the parsed bars (`from_bars`, as the command does): the copy is not timed.
    let planned = median_with(
        || bars.clone(),
        |bars| drop(IngestPlan::from_bars("BTCUSDT", Timeframe::M1, bars, true).expect("valid bars")),
    );
    let months = plan.months().len();
    // Build and encode, one thread, as the store does (the partitions are encoded as they are
    // built, not copied out first).
    let mut files = 0;
    let encoded = median(|| files = encode_months(&plan, 0..months).0);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "  steps: parse 12 CSVs {:.1} ms, plan {:.1} ms, build and encode {files} partitions {:.1} ms (one thread)",
        ms(parsed),
        ms(planned),
        ms(encoded)
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for threads in [1, cores] {
        let mut written = (0, 0);
        let cpu = process_cpu();
        let d = median(|| written = ingest(&csvs, threads));
        let cpu = (process_cpu() - cpu) / common::RUNS as u32;
        let s = d.as_secs_f64();
        println!(
            "ingest 1 year of 1m, no upload ({mb:.0} MB of CSV, {threads} thread(s) encoding): {:.1} ms  {:.1} M rows/s  \
             {} files, {:.1} MB; CPU {:.1} ms a run",
            s * 1e3,
            bars.len() as f64 / s / 1e6,
            written.0,
            written.1 as f64 / 1e6,
            ms(cpu)
        );
    }
}
