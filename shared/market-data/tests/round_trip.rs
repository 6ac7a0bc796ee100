//! CSV -> Bars -> Parquet -> Bars is lossless (bit-identical f64s), and the whole ingest path
//! (parse, split into months, write, read back, coverage, resample) fits together.

use pipai_market_data::coverage::Coverage;
use pipai_market_data::layout::{append, partition_key, split_by_month};
use pipai_market_data::parquet::{append_bars_from_parquet, bars_from_parquet, bars_to_parquet};
use pipai_market_data::{parse_klines, resample, Bars, Timeframe};
use proptest::prelude::*;

fn bits(b: &Bars) -> Vec<(i64, [u64; 5])> {
    (0..b.len())
        .map(|i| (b.open_time[i], [b.open[i], b.high[i], b.low[i], b.close[i], b.volume[i]].map(f64::to_bits)))
        .collect()
}

const BINANCE: &str = "\
1735689600000000,93576.00000000,93610.93000000,93537.50000000,93610.93000000,8.21827000,1735689659999999,768978.17041960,1891,5.33372000,499115.39716380,0
1735689660000000,93610.93000000,93652.00000000,93606.64000000,93650.00000000,11.20210000,1735689719999999,1048981.27627620,2209,5.92232000,554547.35329010,0
1735689720000000,93650.00000000,93697.00000000,93644.00000000,93664.53000000,9.40000000,1735689779999999,880570.38570990,2005,5.00000000,468419.10013580,0
1735689840000000,93664.53000000,93664.54000000,93600.01000000,93600.01000000,0.00001000,1735689899999999,0.93664540,1,0.00001000,0.93664540,0
";

#[test]
fn binance_csv_to_parquet_and_back_is_bit_identical() {
    let bars = parse_klines("BTCUSDT-1m-2025-01.csv", BINANCE.as_bytes()).unwrap();
    assert_eq!(bars.len(), 4);
    // The parsed values are exactly what Rust's decimal parser gives for the text.
    assert_eq!(bars.high[0].to_bits(), "93610.93000000".parse::<f64>().unwrap().to_bits());
    assert_eq!(bars.volume[3], 0.00001);
    let back = bars_from_parquet(bars_to_parquet(&bars).unwrap()).unwrap();
    assert_eq!(bits(&back), bits(&bars));

    // Coverage of the parsed month: 00:03 is missing.
    let cov = Coverage::from_bars("BTCUSDT", Timeframe::M1, &back).unwrap();
    assert_eq!(cov.gaps.len(), 1);
    assert_eq!(cov.gaps[0].from_ms, 1_735_689_780_000);
    let err = cov.check(1_735_689_600_000, 1_735_689_840_000).unwrap_err();
    assert!(err.to_string().contains("is missing 2025-01-01T00:03:00Z (1 bar)"), "{err}");

    // 5m bucket built from the four minutes that exist.
    let five = resample(&back, Timeframe::M5);
    assert_eq!(five.len(), 1);
    assert_eq!((five.open[0], five.high[0], five.low[0], five.close[0]), (93576.0, 93697.0, 93537.5, 93600.01));
}

#[test]
fn months_written_and_read_back_concatenate_to_the_input() {
    let preset = pipai_market_data::Preset::ethusdt();
    let start = preset.anchor_ms + 25 * 86_400_000;
    let bars = preset.generate(start, start + 40 * 86_400_000);
    let mut store = std::collections::BTreeMap::new();
    for (month, part) in split_by_month(&bars) {
        store.insert(partition_key("ETHUSDT", Timeframe::M1, month).unwrap(), bars_to_parquet(&part).unwrap());
    }
    assert_eq!(
        store.keys().collect::<Vec<_>>(),
        [
            "bars/v1/symbol=ETHUSDT/timeframe=1m/month=2024-01.parquet",
            "bars/v1/symbol=ETHUSDT/timeframe=1m/month=2024-02.parquet",
            "bars/v1/symbol=ETHUSDT/timeframe=1m/month=2024-03.parquet",
        ]
    );
    let mut back = Bars::default();
    for bytes in store.values() {
        append_bars_from_parquet(bytes.clone(), &mut back).unwrap();
    }
    back.validate().unwrap();
    assert_eq!(bits(&back), bits(&bars));
    let mut again = Bars::default();
    for (_, part) in split_by_month(&back) {
        append(&mut again, &part);
    }
    assert_eq!(again, bars);
}

/// A positive finite price over a wide range of magnitudes.
fn price() -> impl Strategy<Value = f64> {
    1e-8f64..1e9
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any valid bars, printed with Rust's shortest round-trip formatting into a plain CSV and into
    /// a Binance CSV with microsecond times, parse back bit-identically and survive Parquet.
    #[test]
    fn any_bars_round_trip(rows in prop::collection::vec((price(), price(), price(), price(), 0f64..1e7, 1u32..5), 1..40)) {
        let mut bars = Bars::default();
        let mut t = 1_600_000_000_000i64;
        for (a, b, c, d, v, step) in rows {
            let mut p = [a, b, c, d];
            p.sort_by(f64::total_cmp);
            // low, open, close, high from the sorted four.
            bars.push(pipai_market_data::Bar { open_time: t, open: p[1], high: p[3], low: p[0], close: p[2], volume: v });
            t += step as i64 * 60_000;
        }
        let mut plain = String::from("open_time,open,high,low,close,volume\n");
        let mut binance = String::new();
        for i in 0..bars.len() {
            let (o, h, l, c, v) = (bars.open[i], bars.high[i], bars.low[i], bars.close[i], bars.volume[i]);
            plain += &format!("{},{o},{h},{l},{c},{v}\n", bars.open_time[i]);
            binance += &format!("{},{o},{h},{l},{c},{v},0,0,0,0,0,0\n", bars.open_time[i] * 1000);
        }
        let a = parse_klines("plain.csv", plain.as_bytes()).unwrap();
        let b = parse_klines("binance.csv", binance.as_bytes()).unwrap();
        prop_assert_eq!(bits(&a), bits(&bars));
        prop_assert_eq!(bits(&b), bits(&bars));
        let back = bars_from_parquet(bars_to_parquet(&a).unwrap()).unwrap();
        prop_assert_eq!(bits(&back), bits(&bars));
    }
}
