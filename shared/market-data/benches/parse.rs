//! CSV parse throughput on one year of 1m bars (525,600 rows of the BTCUSDT preset), as a plain
//! CSV and as a Binance kline dump: the chunked parser every caller uses, on every core, against
//! the sequential reference. Median of 5 parses each; prints MB/s and rows/s, and the load.
//!
//! Then the decoding of the same year from the market data's Parquet files (12 month files, as
//! the bucket holds them and as `pipai run --data FILE.parquet` reads each).
//!
//! Run: `cargo bench -p pipai-market-data --bench parse` (or `infra/bench.sh run`).

use pipai_market_data::csv::{
    parse_csv, parse_csv_reference, write_binance, write_plain, CsvError, KlineFormat, TimeUnit,
};
use pipai_market_data::generate::{Preset, PRESET_ANCHOR_MS};
use pipai_market_data::{bars_from_parquet, bars_to_parquet, split_by_month, Bars};

mod common;
use common::{median, print_load};

type Parser = fn(&str, &[u8]) -> Result<(Bars, KlineFormat), CsvError>;

fn main() {
    print_load();
    let bars = Preset::btcusdt().generate(PRESET_ANCHOR_MS, PRESET_ANCHOR_MS + 365 * 86_400_000);
    for (label, text) in [
        ("plain CSV", write_plain(&bars)),
        ("Binance CSV (ms)", write_binance(&bars, TimeUnit::Millis)),
        ("Binance CSV (µs)", write_binance(&bars, TimeUnit::Micros)),
    ] {
        let mb = text.len() as f64 / 1e6;
        for (parser, parse) in [("chunked", parse_csv as Parser), ("reference", parse_csv_reference as Parser)] {
            let d = median(|| {
                let (parsed, _) = parse("year.csv", text.as_bytes()).expect("the bench's own CSV parses");
                assert_eq!(parsed.len(), bars.len());
            });
            let s = d.as_secs_f64();
            println!(
                "parse {label:<17} {mb:>5.1} MB {parser:<9} {:>7.1} ms  {:>6.0} MB/s  {:>5.1} M rows/s",
                s * 1e3,
                mb / s,
                bars.len() as f64 / s / 1e6
            );
        }
    }

    let files: Vec<Vec<u8>> =
        split_by_month(&bars).iter().map(|(_, part)| bars_to_parquet(part).expect("valid bars")).collect();
    let mb = files.iter().map(Vec::len).sum::<usize>() as f64 / 1e6;
    let d = median(|| {
        let rows: usize = files.iter().map(|f| bars_from_parquet(f.clone()).expect("own file").len()).sum();
        assert_eq!(rows, bars.len());
    });
    println!(
        "decode Parquet, 12 month files {mb:>5.1} MB           {:>7.1} ms  {:>5.1} M rows/s",
        d.as_secs_f64() * 1e3,
        bars.len() as f64 / d.as_secs_f64() / 1e6
    );
}
