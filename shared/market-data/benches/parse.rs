//! CSV parse throughput on one year of 1m bars (525,600 rows of the BTCUSDT preset), as a plain
//! CSV and as a Binance kline dump: the chunked parser every caller uses, on every core, against
//! the sequential reference. Median of 5 parses each; prints MB/s and rows/s, and the load.
//!
//! Then the year's Binance CSV in a zip, streamed through the parser, and the decoding of the same
//! year from the market data's Parquet files (12 month files together, as the bucket holds them
//! and `pipai run --data DIR` reads them, and one year file).
//!
//! Run: `cargo bench -p pipai-market-data --bench parse` (or `infra/bench.sh run`).

use bytes::Bytes;
use pipai_market_data::csv::{
    parse_csv, parse_csv_reference, parse_zip, write_binance, write_plain, CsvError, KlineFormat, TimeUnit,
};
use pipai_market_data::generate::{Preset, PRESET_ANCHOR_MS};
use pipai_market_data::{bars_from_parquet, bars_from_parquet_files, bars_to_parquet, split_by_month, Bars};

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

    // A Binance dump as it ships: the year's CSV in a zip, streamed through the parser.
    let text = write_binance(&bars, TimeUnit::Millis);
    let zipped = {
        use std::io::Write;
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        w.start_file("BTCUSDT-1m-2024.csv", opts).expect("zip");
        w.write_all(text.as_bytes()).expect("zip");
        w.finish().expect("zip").into_inner()
    };
    let d = median(|| assert_eq!(parse_zip("year.zip", &zipped).expect("own zip").0.len(), bars.len()));
    println!(
        "parse Binance zip, streamed {:>5.1} MB ({:.1} MB inflated) {:>7.1} ms  {:>6.0} MB/s  {:>5.1} M rows/s",
        zipped.len() as f64 / 1e6,
        text.len() as f64 / 1e6,
        d.as_secs_f64() * 1e3,
        text.len() as f64 / 1e6 / d.as_secs_f64(),
        bars.len() as f64 / d.as_secs_f64() / 1e6
    );

    // Parquet: the 12 month files as the bucket holds them (`pipai run --data DIR` decodes them
    // together), and the year as one file (`pipai data generate --out year.parquet`).
    let files: Vec<Bytes> =
        split_by_month(&bars).iter().map(|(_, part)| bars_to_parquet(part).expect("valid bars").into()).collect();
    let year: Bytes = bars_to_parquet(&bars).expect("valid bars").into();
    let mb = files.iter().map(Bytes::len).sum::<usize>() as f64 / 1e6;
    let d = median(|| assert_eq!(bars_from_parquet_files(files.clone()).expect("own files").0.len(), bars.len()));
    println!(
        "decode Parquet, 12 month files {mb:>5.1} MB           {:>7.1} ms  {:>5.1} M rows/s",
        d.as_secs_f64() * 1e3,
        bars.len() as f64 / d.as_secs_f64() / 1e6
    );
    let d = median(|| assert_eq!(bars_from_parquet(year.clone()).expect("own file").len(), bars.len()));
    println!(
        "decode Parquet, one year file  {:>5.1} MB           {:>7.1} ms  {:>5.1} M rows/s",
        year.len() as f64 / 1e6,
        d.as_secs_f64() * 1e3,
        bars.len() as f64 / d.as_secs_f64() / 1e6
    );
}
