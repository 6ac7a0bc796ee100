//! One step of a year's ingest without the store, run once, for profilers (callgrind counts
//! instructions, which a loaded machine does not change; `infra/bench.sh run` gives the times):
//!
//! ```text
//! cargo build --release -p pipai-market-data --example ingest_steps
//! valgrind --tool=callgrind target/release/examples/ingest_steps encode
//! ```
//!
//! Steps: `parse` (the 12 monthly Binance CSVs, as the bench makes them), `plan`, `build` (the
//! 72 partitions, plan given), `encode` (the 72 partitions built), `months` (build and encode,
//! month by month, as the store does), `all` (parse, plan, build and encode). The setup
//! (generating the year and its CSVs) is the same for every step, so the step's instructions
//! are the difference against `none`.
use pipai_market_data::csv::{parse_csv, write_binance, TimeUnit};
use pipai_market_data::generate::{Preset, PRESET_ANCHOR_MS};
use pipai_market_data::layout::append;
use pipai_market_data::{bars_to_parquet, split_by_month, Bars, IngestPlan, Timeframe};

fn main() {
    let step = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    if step == "decode" {
        // `decode FILE...`: Parquet files decoded as `pipai run --data` does (mapped, pages
        // given back once decoded).
        let files: Vec<_> = std::env::args()
            .skip(2)
            .map(|p| pipai_market_data::csv::FileBytes::read(p.as_ref()).expect("readable").into_shared())
            .collect();
        let (files, bytes): (Vec<_>, Vec<_>) = files.into_iter().unzip();
        let t = std::time::Instant::now();
        let (bars, _) = pipai_market_data::bars_from_parquet_files_releasing(bytes, &|i, part| files[i].release(part))
            .expect("bars files");
        eprintln!("decode: {} bars in {:.1} ms", bars.len(), t.elapsed().as_secs_f64() * 1e3);
        return;
    }
    let bars = Preset::btcusdt().generate(PRESET_ANCHOR_MS, PRESET_ANCHOR_MS + 365 * 86_400_000);
    let csvs: Vec<String> =
        split_by_month(&bars).iter().map(|(_, part)| write_binance(part, TimeUnit::Millis)).collect();
    if step == "write" {
        // `write DIR`: the year as DIR/year.parquet and DIR/months/month=….parquet.
        let dir = std::path::PathBuf::from(std::env::args().nth(2).expect("write DIR"));
        std::fs::create_dir_all(dir.join("months")).expect("a directory");
        std::fs::write(dir.join("year.parquet"), bars_to_parquet(&bars).expect("valid")).expect("written");
        for (month, part) in split_by_month(&bars) {
            let path = dir.join(format!("months/month={month}.parquet"));
            std::fs::write(path, bars_to_parquet(&part).expect("valid")).expect("written");
        }
        return;
    }
    let plan_of = |bars: Bars| IngestPlan::from_bars("BTCUSDT", Timeframe::M1, bars, true).expect("valid bars");
    let t = std::time::Instant::now();
    let out: usize = match step.as_str() {
        "none" => 0,
        "parse" => csvs.iter().map(|csv| parse_csv("month.csv", csv.as_bytes()).expect("own CSV").0.len()).sum(),
        "plan" => plan_of(bars).rows(),
        "build" => {
            let plan = plan_of(bars);
            let months = plan.months().len();
            (0..months).map(|i| plan.month_partitions(i, &[], &[]).expect("fresh").len()).sum()
        }
        "encode" => {
            let plan = plan_of(bars);
            let months = plan.months().len();
            let parts: Vec<_> = (0..months).flat_map(|i| plan.month_partitions(i, &[], &[]).expect("fresh")).collect();
            let t = std::time::Instant::now();
            let n = parts.iter().map(|(_, b)| bars_to_parquet(b).expect("valid").len()).sum();
            eprintln!("encode alone: {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
            n
        }
        "months" => {
            let plan = plan_of(bars);
            let months = plan.months().len();
            (0..months).map(|i| encoded(&plan, i)).sum()
        }
        _ => {
            let mut all = Bars::default();
            for csv in &csvs {
                append(&mut all, &parse_csv("month.csv", csv.as_bytes()).expect("own CSV").0);
            }
            let plan = plan_of(all);
            let months = plan.months().len();
            (0..months).map(|i| encoded(&plan, i)).sum()
        }
    };
    eprintln!("{step}: {out} in {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
}

/// The encoded partitions of month `i` of `plan`, as the store encodes them: their bytes.
fn encoded(plan: &IngestPlan, i: usize) -> usize {
    plan.encode_month(i, &[], &[]).expect("fresh").iter().map(|p| p.bytes.len()).sum()
}
