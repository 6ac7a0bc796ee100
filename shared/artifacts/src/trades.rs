//! `trades.parquet` and `trades.csv`: the result's trades, typed.

use pipai_engine::result::Trade;

use crate::parquet_out::{decimal, text, write, Column};

/// The Parquet schema of `trades.parquet`: money, prices and quantities are the result's
/// decimals exactly (`DECIMAL(38, 8)`), times UTC millisecond timestamps.
pub const SCHEMA: &str = "message trades {
  required int64 id;
  required binary side (STRING);
  required binary symbol (STRING);
  required int64 entry_time (TIMESTAMP(MILLIS,true));
  required fixed_len_byte_array(16) entry_price (DECIMAL(38,8));
  required int64 exit_time (TIMESTAMP(MILLIS,true));
  required fixed_len_byte_array(16) exit_price (DECIMAL(38,8));
  required fixed_len_byte_array(16) qty (DECIMAL(38,8));
  required fixed_len_byte_array(16) pnl (DECIMAL(38,8));
  required fixed_len_byte_array(16) fee (DECIMAL(38,8));
  required binary exit_reason (STRING);
}";

/// The CSV header: the result's trade fields, in its order.
pub const CSV_HEADER: &str = "id,side,symbol,entry_time,entry_price,exit_time,exit_price,qty,pnl,fee,exit_reason\n";

pub fn to_parquet(trades: &[Trade]) -> Result<Vec<u8>, ::parquet::errors::ParquetError> {
    let ids: Vec<i64> = trades.iter().map(|t| t.id as i64).collect();
    let entry: Vec<i64> = trades.iter().map(|t| t.entry_time_ms).collect();
    let exit: Vec<i64> = trades.iter().map(|t| t.exit_time_ms).collect();
    let texts = |f: fn(&Trade) -> &str| trades.iter().map(|t| text(f(t))).collect::<Vec<_>>();
    let (side, symbol, reason) = (texts(|t| t.side), texts(|t| &t.symbol), texts(|t| t.exit_reason));
    let decimals = |f: fn(&Trade) -> rust_decimal::Decimal| trades.iter().map(|t| decimal(f(t))).collect::<Vec<_>>();
    let (entry_price, exit_price) = (decimals(|t| t.entry_price), decimals(|t| t.exit_price));
    let (qty, pnl, fee) = (decimals(|t| t.qty), decimals(|t| t.pnl), decimals(|t| t.fee));
    let columns = [
        Column::Int64 { values: &ids, delta: true },
        Column::Text(&side),
        Column::Text(&symbol),
        Column::Int64 { values: &entry, delta: false },
        Column::Decimal(&entry_price),
        Column::Int64 { values: &exit, delta: false },
        Column::Decimal(&exit_price),
        Column::Decimal(&qty),
        Column::Decimal(&pnl),
        Column::Decimal(&fee),
        Column::Text(&reason),
    ];
    write(SCHEMA, &columns, trades.len())
}

/// One line per trade, every value as the result's JSON writes it (none needs quoting: symbols
/// are `A-Z0-9`, the words fixed).
pub fn to_csv(trades: &[Trade]) -> Vec<u8> {
    use std::fmt::Write;
    let mut out = String::with_capacity(trades.len() * 160 + CSV_HEADER.len());
    out.push_str(CSV_HEADER);
    for t in trades {
        writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{}",
            t.id,
            t.side,
            t.symbol,
            t.entry_time,
            t.entry_price,
            t.exit_time,
            t.exit_price,
            t.qty,
            t.pnl,
            t.fee,
            t.exit_reason
        )
        .expect("writing to a String");
    }
    out.into_bytes()
}
