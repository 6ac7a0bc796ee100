//! Prints the speed and size figures the crate's choices rest on. Run in release mode:
//!
//! ```text
//! cargo run --release -p pipai-market-data --example measure
//! ```
//!
//! Not a test: timings depend on the machine. Every figure is the best of a few runs.

use std::hint::black_box;
use std::time::{Duration, Instant};

use pipai_market_data::parquet::{
    append_bars_from_parquet, bars_to_parquet_with, Compression, FloatEncoding, WriteOptions,
};
use pipai_market_data::{csv, generate, layout, resample, Bars, Coverage, Preset, Timeframe};

fn best<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..runs {
        let t = Instant::now();
        let r = f();
        best = best.min(t.elapsed());
        out = Some(r);
    }
    (best, out.unwrap())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn per_million(d: Duration, rows: usize) -> f64 {
    ms(d) * 1e6 / rows as f64
}

fn binance_csv(bars: &Bars, micros: bool) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bars.len() * 120);
    for i in 0..bars.len() {
        let t = bars.open_time[i];
        let (t, ct) = if micros { (t * 1000, (t + 59_999) * 1000 + 999) } else { (t, t + 59_999) };
        let quote = bars.volume[i] * bars.close[i];
        writeln!(
            s,
            "{t},{:.8},{:.8},{:.8},{:.8},{:.8},{ct},{quote:.8},1234,{:.8},{:.8},0",
            bars.open[i],
            bars.high[i],
            bars.low[i],
            bars.close[i],
            bars.volume[i],
            bars.volume[i] / 2.0,
            quote / 2.0
        )
        .unwrap();
    }
    s
}

fn main() {
    let btc = Preset::btcusdt();
    let anchor = generate::PRESET_ANCHOR_MS;

    // Generator: two years of 1m bars.
    let two_years = generate::days_after_anchor(730);
    let (d, bars2y) = best(3, || btc.generate(anchor, two_years));
    println!(
        "generate: {} bars (2 years of 1m) in {:.1} ms ({:.1} ms per million)",
        bars2y.len(),
        ms(d),
        per_million(d, bars2y.len())
    );

    for preset in Preset::all() {
        let b = preset.generate(anchor, two_years);
        let rets: Vec<f64> = b.close.windows(2).map(|w| (w[1] / w[0]).ln()).collect();
        let mean = rets.iter().sum::<f64>() / rets.len() as f64;
        let var = rets.iter().map(|r| (r - mean) * (r - mean)).sum::<f64>() / rets.len() as f64;
        println!(
            "generate: {} 2 years: realised volatility {:.1}% annualised, close {:.2} -> {:.2}",
            preset.symbol,
            (var * 525_600.0).sqrt() * 100.0,
            b.open[0],
            b.close[b.len() - 1]
        );
    }

    // Five years = 60 months of 1m bars.
    let end = pipai_market_data::Month::new(2029, 1).unwrap().start_ms();
    let bars = btc.generate(anchor, end);
    let months = layout::split_by_month(&bars);
    println!("5 years: {} bars in {} monthly partitions", bars.len(), months.len());

    // CSV parse speed on one month and on a year.
    let year = bars.slice(bars.window(anchor, generate::days_after_anchor(366) - 1));
    for micros in [false, true] {
        let text = binance_csv(&year, micros);
        let (d, parsed) = best(3, || csv::parse_klines("BTCUSDT-1m-2024.csv", text.as_bytes()).unwrap());
        assert_eq!(parsed.len(), year.len());
        println!(
            "csv: Binance {} one year ({} rows, {:.1} MB) parsed in {:.1} ms ({:.1} ms per million rows, {:.0} MB/s)",
            if micros { "µs" } else { "ms" },
            year.len(),
            text.len() as f64 / 1e6,
            ms(d),
            per_million(d, year.len()),
            text.len() as f64 / 1e6 / d.as_secs_f64()
        );
    }

    // Resampling and coverage over five years.
    let (d, h1) = best(3, || resample::resample(&bars, Timeframe::H1));
    println!("resample: 5 years 1m -> 1h ({} bars) in {:.1} ms", h1.len(), ms(d));
    let (d, _) = best(3, || Coverage::from_bars("BTCUSDT", Timeframe::M1, &bars).unwrap());
    println!("coverage: 5 years of open times in {:.2} ms", ms(d));
    let (d, _) = best(3, || bars.validate().unwrap());
    println!("Bars::validate: 5 years in {:.2} ms", ms(d));

    // Parquet: size and decode speed for each option.
    println!("parquet (60 monthly files, 5 years of 1m bars; decode = all 60 files into one Bars):");
    println!(
        "  {:<18} {:<16} {:<6} {:>10} {:>10} {:>9} {:>13}",
        "compr", "floats", "delta", "total MB", "KB/month", "write ms", "decode ms/1M"
    );
    for compression in [
        Compression::None,
        Compression::Snappy,
        Compression::Zstd { level: 1 },
        Compression::Zstd { level: 3 },
        Compression::Zstd { level: 9 },
    ] {
        for float_encoding in [FloatEncoding::Plain, FloatEncoding::ByteStreamSplit, FloatEncoding::Dictionary] {
            for delta_time in [false, true] {
                let opts = WriteOptions { compression, float_encoding, delta_time };
                let t = Instant::now();
                let files: Vec<bytes::Bytes> =
                    months.iter().map(|(_, b)| bytes::Bytes::from(bars_to_parquet_with(b, opts).unwrap())).collect();
                let write = t.elapsed();
                let total: usize = files.iter().map(|f| f.len()).sum();
                let (d, back) = best(5, || {
                    let mut out = Bars::default();
                    for f in &files {
                        append_bars_from_parquet(f.clone(), &mut out).unwrap();
                    }
                    black_box(out)
                });
                assert_eq!(back, bars);
                println!(
                    "  {:<18} {:<16} {:<6} {:>10.2} {:>10.1} {:>9.1} {:>13.2}",
                    format!("{compression:?}"),
                    format!("{float_encoding:?}"),
                    delta_time,
                    total as f64 / 1e6,
                    total as f64 / 1e3 / months.len() as f64,
                    ms(write),
                    per_million(d, bars.len())
                );
            }
        }
    }
    let default = WriteOptions::default();
    let files: Vec<bytes::Bytes> =
        months.iter().map(|(_, b)| bytes::Bytes::from(bars_to_parquet_with(b, default).unwrap())).collect();
    let (d, _) = best(5, || {
        let mut out = Bars::default();
        for f in &files {
            append_bars_from_parquet(f.clone(), &mut out).unwrap();
        }
        out
    });
    println!("default {default:?}: 60 files decode in {:.1} ms total", ms(d));
}
