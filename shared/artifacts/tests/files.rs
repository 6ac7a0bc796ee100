//! The files of a real run, read back with Parquet's own record reader (another reader than the
//! writer's column API) and as CSV text: rows equal to the result, types as documented.

use bytes::Bytes;
use chrono::{TimeZone, Utc};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Row, RowAccessor};
use pipai_artifacts::{write_all, ArtifactFile, Content, Format};
use pipai_engine::time::iso;
use pipai_engine::{run, Bars, JobConfig, NoObserver};
use pipai_market_data::generate::{generate_1m, PRESET_ANCHOR_MS};
use rust_decimal::Decimal;
use serde_json::json;

const DAY: i64 = 86_400_000;

fn config(symbols: &[&str], template: &str, params: serde_json::Value) -> JobConfig {
    let body = json!({"template_id": template, "params": params, "symbols": symbols, "timeframe": "1m",
        "start": iso(PRESET_ANCHOR_MS + DAY / 2), "end": iso(PRESET_ANCHOR_MS + 3 * DAY),
        "capital": "10000", "fee_bps": "5"});
    JobConfig::from_value(&body, Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0).unwrap()).unwrap()
}

fn rows(bytes: &[u8]) -> (Vec<Row>, String) {
    let reader = SerializedFileReader::new(Bytes::copy_from_slice(bytes)).unwrap();
    let schema = format!("{:?}", reader.metadata().file_metadata().schema_descr().columns());
    let rows = reader.get_row_iter(None).unwrap().map(|r| r.unwrap()).collect();
    (rows, schema)
}

fn file<'a>(files: &'a [ArtifactFile], name: &str) -> &'a ArtifactFile {
    files.iter().find(|f| f.name == name).unwrap_or_else(|| panic!("{name} missing"))
}

fn decimal(row: &Row, i: usize) -> Decimal {
    let d = row.get_decimal(i).unwrap();
    let mut be = [0u8; 16];
    be.copy_from_slice(d.data());
    assert_eq!((d.precision(), d.scale()), (38, 8));
    Decimal::from_i128_with_scale(i128::from_be_bytes(be), 8).normalize()
}

#[test]
fn one_symbol_every_file_matches_the_result() {
    let bars = generate_1m(3, 42_000.0, PRESET_ANCHOR_MS, PRESET_ANCHOR_MS + 4 * DAY);
    let cfg = config(&["BTCUSDT"], "tpl_ma_cross", json!({"fast": 5, "slow": 30, "direction": "both"}));
    let data = [bars];
    let backtest = run(&cfg, &data, &mut NoObserver).unwrap();
    let files = write_all(&backtest, &cfg, &data).unwrap();
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["equity.parquet", "equity.csv", "trades.parquet", "trades.csv", "bars.parquet"]);
    let entry = serde_json::to_value(files[0].entry()).unwrap();
    assert_eq!(
        entry,
        json!({"name": "equity.parquet", "content": "equity", "format": "parquet", "bytes": files[0].data.len()})
    );
    assert_eq!((files[4].content, files[4].format), (Content::Bars, Format::Parquet));

    // Equity: one row per simulated bar, UTC millisecond timestamps, the engine's floats.
    let result = &backtest.result;
    let (equity, schema) = rows(&file(&files, "equity.parquet").data);
    assert!(schema.contains("TIMESTAMP") && schema.contains("is_adjusted_to_u_t_c: true"), "{schema}");
    assert_eq!(equity.len() as u64, result.summary.bars);
    let window = &backtest.windows[0];
    for (i, row) in equity.iter().enumerate() {
        assert_eq!(row.get_timestamp_millis(0).unwrap(), data[0].open_time[window.start + i]);
        assert_eq!(row.get_double(1).unwrap().to_bits(), backtest.bar_equity[i].to_bits());
        assert!(row.get_double(2).unwrap() <= 0.0);
    }
    let min_dd = equity.iter().map(|r| r.get_double(2).unwrap()).fold(0.0, f64::min);
    assert_eq!(pipai_engine::result::ratio(Some(min_dd)), result.metrics.max_drawdown);
    let csv = String::from_utf8(file(&files, "equity.csv").data.clone()).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "open_time,equity,drawdown");
    assert_eq!(lines.len() - 1, equity.len());
    for (line, row) in lines[1..].iter().zip(&equity) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f[0], iso(row.get_timestamp_millis(0).unwrap()));
        assert_eq!(f[1].parse::<f64>().unwrap().to_bits(), row.get_double(1).unwrap().to_bits());
        assert_eq!(f[2].parse::<f64>().unwrap().to_bits(), row.get_double(2).unwrap().to_bits());
    }

    // Trades: the result's fields, decimals exactly.
    let (trades, _) = rows(&file(&files, "trades.parquet").data);
    assert!(trades.len() > 10, "{} trades", trades.len());
    assert_eq!(trades.len(), result.trades.len());
    let csv = String::from_utf8(file(&files, "trades.csv").data.clone()).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "id,side,symbol,entry_time,entry_price,exit_time,exit_price,qty,pnl,fee,exit_reason");
    for ((row, t), line) in trades.iter().zip(&result.trades).zip(&lines[1..]) {
        let json = serde_json::to_value(t).unwrap();
        assert_eq!(row.get_long(0).unwrap() as u64, t.id);
        assert_eq!(row.get_string(1).unwrap(), t.side);
        assert_eq!(row.get_string(2).unwrap(), &t.symbol);
        assert_eq!(iso(row.get_timestamp_millis(3).unwrap()), t.entry_time);
        assert_eq!(decimal(row, 4), t.entry_price.normalize());
        assert_eq!(iso(row.get_timestamp_millis(5).unwrap()), t.exit_time);
        assert_eq!(decimal(row, 6), t.exit_price.normalize());
        assert_eq!(decimal(row, 7), t.qty.normalize());
        assert_eq!(decimal(row, 8), t.pnl.normalize());
        assert_eq!(decimal(row, 9), t.fee.normalize());
        assert_eq!(row.get_string(10).unwrap(), t.exit_reason);
        let fields = [
            "id",
            "side",
            "symbol",
            "entry_time",
            "entry_price",
            "exit_time",
            "exit_price",
            "qty",
            "pnl",
            "fee",
            "exit_reason",
        ];
        let expected: Vec<String> = fields
            .iter()
            .map(|k| json[k].as_str().map(str::to_string).unwrap_or_else(|| json[k].to_string()))
            .collect();
        assert_eq!(line.split(',').collect::<Vec<_>>(), expected);
    }

    // Bars: the window's bars exactly, readable by the market-data reader, hashing to the provenance.
    let back = pipai_market_data::bars_from_parquet(file(&files, "bars.parquet").data.clone()).unwrap();
    assert_eq!(back, data[0].slice(window.clone()));
    let p = &result.provenance.data[0];
    assert_eq!(pipai_engine::provenance::bars_sha256(&back, 0..back.len()), p.sha256);
    assert_eq!(back.len() as u64, p.bars);
}

#[test]
fn several_symbols_get_a_bars_file_each_and_no_trades_still_makes_files() {
    let btc = generate_1m(3, 42_000.0, PRESET_ANCHOR_MS, PRESET_ANCHOR_MS + 4 * DAY);
    let eth = generate_1m(4, 2_200.0, PRESET_ANCHOR_MS, PRESET_ANCHOR_MS + 4 * DAY);
    let cfg = config(&["BTCUSDT", "ETHUSDT"], "tpl_momentum_rotation", json!({"lookback": 60}));
    let data = [btc, eth];
    let backtest = run(&cfg, &data, &mut NoObserver).unwrap();
    let files = write_all(&backtest, &cfg, &data).unwrap();
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names[4..], ["bars-BTCUSDT.parquet", "bars-ETHUSDT.parquet"]);
    for (i, f) in files[4..].iter().enumerate() {
        let back = pipai_market_data::bars_from_parquet(f.data.clone()).unwrap();
        assert_eq!(back, data[i].slice(backtest.windows[i].clone()));
    }
    // A run without trades: a trades file of no rows, with its schema.
    let quiet = config(&["BTCUSDT"], "tpl_ma_cross", json!({"fast": 5, "slow": 3000}));
    let backtest = run(&quiet, &data[..1], &mut NoObserver).unwrap();
    assert!(backtest.result.trades.is_empty());
    let files = write_all(&backtest, &quiet, &data[..1]).unwrap();
    let (trades, schema) = rows(&file(&files, "trades.parquet").data);
    assert!(trades.is_empty() && schema.contains("exit_reason"));
    assert_eq!(
        String::from_utf8(file(&files, "trades.csv").data.clone()).unwrap(),
        pipai_artifacts::trades::CSV_HEADER
    );
    // Series other than the run's: an error, not wrong files.
    assert!(write_all(&backtest, &quiet, &[Bars::default()]).is_err());
}
