//! Key layout of the market-data bucket, and the split of bars into its monthly partitions.
//!
//! ```text
//! bars/v1/symbol=BTCUSDT/timeframe=1m/month=2025-01.parquet   one file per symbol, timeframe, UTC month
//! ```
//!
//! - Hive-style `name=value` segments, so DuckDB (`read_parquet('…/bars/v1/*/*/*.parquet',
//!   hive_partitioning = true)`) and polars see `symbol`, `timeframe` and `month` as columns.
//! - What is held (first and last bar, gaps) is not in the bucket: the coverage catalog (a
//!   DynamoDB table, see `pipai-aws`) is the record, and a reader plans its GETs from it.
//! - `v1` is the layout/schema version: a change of the file schema (columns, their types) gets a
//!   new prefix, so old and new readers never meet a file they cannot read. The page codec is
//!   not part of it: v1 files were first written with Snappy, then ZSTD, now uncompressed
//!   (issue 14), and the reader reads all three (no v1 data was ever deployed with Snappy).
//! - A month partition holds the bars with `month.start_ms() <= open_time < month.end_ms()`
//!   (44,640 1m bars for a full 31-day month). It is always rewritten whole, in one PUT, so a
//!   reader sees the old or the new file, never a mix ([`crate::ingest`] says what goes in it).
//! - Symbols are 1-32 characters of `A-Z` and `0-9` (exchange style, e.g. `BTCUSDT`), so a key
//!   can never escape its prefix.
//!
//! These are plain functions over strings and [`Bars`]: the caller reads and writes the bytes
//! from S3 or a directory (a local store can use the keys as relative paths).

use pipai_engine::bars::{Bars, Timeframe};

use crate::time::Month;

/// Prefix of every bars object.
pub const BARS_PREFIX: &str = "bars/v1";

/// An invalid symbol for a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid symbol {0:?}: expected 1-32 characters A-Z or 0-9")]
pub struct InvalidSymbol(pub String);

/// Checks that `symbol` is 1-32 characters of `A-Z0-9`.
pub fn validate_symbol(symbol: &str) -> Result<(), InvalidSymbol> {
    let ok = (1..=32).contains(&symbol.len()) && symbol.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(InvalidSymbol(symbol.to_string()))
    }
}

/// `bars/v1/symbol=BTCUSDT/timeframe=1m/` — the folder of one symbol and timeframe (for listing).
pub fn series_prefix(symbol: &str, tf: Timeframe) -> Result<String, InvalidSymbol> {
    validate_symbol(symbol)?;
    Ok(format!("{BARS_PREFIX}/symbol={symbol}/timeframe={tf}/"))
}

/// `bars/v1/symbol=BTCUSDT/timeframe=1m/month=2025-01.parquet`.
pub fn partition_key(symbol: &str, tf: Timeframe, month: Month) -> Result<String, InvalidSymbol> {
    Ok(format!("{}month={month}.parquet", series_prefix(symbol, tf)?))
}

/// The `(symbol, timeframe, month)` of a partition key, or `None` if `key` is not one.
pub fn parse_partition_key(key: &str) -> Option<(String, Timeframe, Month)> {
    let rest = key.strip_prefix(BARS_PREFIX)?.strip_prefix("/symbol=")?;
    let (symbol, rest) = rest.split_once("/timeframe=")?;
    let (tf, rest) = rest.split_once("/month=")?;
    let month = rest.strip_suffix(".parquet")?;
    validate_symbol(symbol).ok()?;
    Some((symbol.to_string(), tf.parse().ok()?, month.parse().ok()?))
}

/// The partition keys a window `[start_ms, end_ms]` (inclusive) touches, in time order.
pub fn partition_keys_for_window(
    symbol: &str,
    tf: Timeframe,
    start_ms: i64,
    end_ms: i64,
) -> Result<Vec<String>, InvalidSymbol> {
    validate_symbol(symbol)?;
    Month::range(start_ms, end_ms).into_iter().map(|m| partition_key(symbol, tf, m)).collect()
}

/// Splits sorted bars into UTC-month partitions, in time order; months without bars are absent.
pub fn split_by_month(bars: &Bars) -> Vec<(Month, Bars)> {
    month_ranges(bars).into_iter().map(|(month, rows)| (month, bars.slice(rows))).collect()
}

/// The rows of each UTC month of sorted bars, in time order; months without bars are absent.
pub fn month_ranges(bars: &Bars) -> Vec<(Month, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bars.len() {
        let month = Month::of_ms(bars.open_time[i]);
        let end = month.end_ms();
        let j = i + bars.open_time[i..].partition_point(|&t| t < end);
        out.push((month, i..j));
        i = j;
    }
    out
}

/// Appends `part` to `out` (e.g. consecutive monthly partitions read back). The caller keeps the
/// order; [`Bars::validate`] on the result checks it.
pub fn append(out: &mut Bars, part: &Bars) {
    out.open_time.extend_from_slice(&part.open_time);
    out.open.extend_from_slice(&part.open);
    out.high.extend_from_slice(&part.high);
    out.low.extend_from_slice(&part.low);
    out.close.extend_from_slice(&part.close);
    out.volume.extend_from_slice(&part.volume);
}

/// Room for `n` bars, allocated once; from [`HUGE_PAGE_ROWS`] bars on, backed by transparent
/// huge pages where the kernel can (see [`huge_pages`]): what the Parquet reader decodes into
/// and what `pipai data ingest` joins its files into.
pub fn bars_with_capacity(n: usize) -> Bars {
    let bars = Bars::with_capacity(n);
    if n >= HUGE_PAGE_ROWS {
        huge_pages(&bars);
    }
    bars
}

/// `n` zeroed bars, backed by transparent huge pages as [`bars_with_capacity`]'s: what the
/// chunked CSV parser writes its pieces into.
pub(crate) fn zeroed_bars(n: usize) -> Bars {
    let bars = Bars::zeroed(n);
    if n >= HUGE_PAGE_ROWS {
        huge_pages(&bars);
    }
    bars
}

/// From this many bars on, [`bars_with_capacity`] asks for huge pages (each column then spans
/// at least one whole 2 MiB page).
pub const HUGE_PAGE_ROWS: usize = 1 << 16;

/// Asks the kernel to back the columns' allocations with transparent huge pages (2 MiB) where
/// they cover whole ones: a year of 1m bars is 25 MB of columns, which 4 KiB pages fill in
/// ~6,200 page faults as the decoder writes them. Only advice (ignored where huge pages are
/// off, `madvise` mode is what this machine and Lambda's kernels run); the bytes are the same.
fn huge_pages(bars: &Bars) {
    const HUGE: usize = 2 << 20;
    let floats = [&bars.open, &bars.high, &bars.low, &bars.close, &bars.volume];
    let mut spans = vec![(bars.open_time.as_ptr() as usize, bars.open_time.capacity() * 8)];
    spans.extend(floats.map(|c| (c.as_ptr() as usize, c.capacity() * 8)));
    for (at, len) in spans {
        let (start, end) = (at.next_multiple_of(HUGE), (at + len) / HUGE * HUGE);
        if start < end {
            // SAFETY: advice on whole pages inside an allocation this function's caller owns and
            // has not written yet; MADV_HUGEPAGE changes how it is backed, never its contents.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipai_engine::time::ymd_ms;

    #[test]
    fn keys() {
        let m: Month = "2025-01".parse().unwrap();
        let k = partition_key("BTCUSDT", Timeframe::M1, m).unwrap();
        assert_eq!(k, "bars/v1/symbol=BTCUSDT/timeframe=1m/month=2025-01.parquet");
        assert_eq!(parse_partition_key(&k), Some(("BTCUSDT".to_string(), Timeframe::M1, m)));
        assert_eq!(parse_partition_key("bars/v1/symbol=ETHUSDT/timeframe=4h/_coverage.json"), None);
        assert_eq!(parse_partition_key("bars/v1/symbol=ETHUSDT/timeframe=2h/month=2025-01.parquet"), None);
        for bad in ["", "btcusdt", "BTC/USDT", "../X", "BTC USDT", &"A".repeat(33)] {
            assert!(partition_key(bad, Timeframe::M1, m).is_err(), "{bad:?}");
        }
        let keys =
            partition_keys_for_window("BTCUSDT", Timeframe::H1, ymd_ms(2024, 12, 31), ymd_ms(2025, 2, 1)).unwrap();
        assert_eq!(
            keys,
            [
                "bars/v1/symbol=BTCUSDT/timeframe=1h/month=2024-12.parquet",
                "bars/v1/symbol=BTCUSDT/timeframe=1h/month=2025-01.parquet",
                "bars/v1/symbol=BTCUSDT/timeframe=1h/month=2025-02.parquet",
            ]
        );
    }

    #[test]
    fn split_into_months_and_back() {
        let start = ymd_ms(2024, 1, 31) + 23 * 3_600_000;
        let end = ymd_ms(2024, 3, 1) + 3_600_000;
        let bars = crate::generate::generate_1m(5, 100.0, start, end);
        let parts = split_by_month(&bars);
        let months: Vec<String> = parts.iter().map(|(m, _)| m.to_string()).collect();
        assert_eq!(months, ["2024-01", "2024-02", "2024-03"]);
        assert_eq!(parts[0].1.len(), 60);
        assert_eq!(parts[1].1.len(), 29 * 1440);
        assert_eq!(parts[2].1.len(), 60);
        assert_eq!(parts[1].1.open_time[0], ymd_ms(2024, 2, 1));
        let mut back = Bars::default();
        for (_, p) in &parts {
            append(&mut back, p);
        }
        assert_eq!(back, bars);
        assert!(split_by_month(&Bars::default()).is_empty());
    }
}
