//! Market data for PipAI Backtest: everything between an exchange's kline dump and the
//! [`Bars`] the engine simulates on.
//!
//! - [`csv`]: parse Binance kline dumps (CSV or the zip Binance ships, ms or µs timestamps) and a
//!   plain `open_time,open,high,low,close,volume` CSV, strictly, into [`Bars`].
//! - [`coverage`]: what a store holds for a symbol and timeframe (first bar, last bar, gaps), merged
//!   across incremental ingests, and whether a backtest window is covered.
//! - [`mod@resample`]: 1m bars to 5m, 15m, 1h, 4h, 1d on UTC boundaries.
//! - [`parquet`]: `Bars` to Parquet bytes and back, losslessly.
//! - [`layout`]: the object keys of the market-data bucket (one Parquet file per symbol, timeframe
//!   and UTC month) and the split of `Bars` into those months.
//! - [`ingest`]: what an ingest writes: the month partitions of the ingested timeframe and of the
//!   coarser ones derived from it, keeping stored bars outside the ingested span.
//! - [`generate`]: deterministic synthetic 1m bars (seeded, no external RNG), for tests and demos.
//! - [`time`]: UTC months, the partition unit (days, milliseconds and ISO 8601 text are
//!   [`pipai_engine::time`]'s).
//!
//! Nothing here does I/O against S3 or a file system except the convenience
//! [`csv::read_klines`]: everything else works on bytes and keys, so the caller plugs in the store.
//!
//! ```
//! use pipai_market_data::{coverage::Coverage, layout, parquet, parse_klines, Timeframe};
//!
//! // A Binance spot dump (microsecond times since 2025), as downloaded (zip or csv).
//! let csv = b"1735689600000000,93576.00,93610.93,93537.50,93610.93,8.21827,1735689659999999,768978.17,1891,5.33,499115.39,0\n\
//!             1735689660000000,93610.93,93652.00,93606.64,93650.00,11.2021,1735689719999999,1048981.27,2209,5.92,554547.35,0\n";
//! let bars = parse_klines("BTCUSDT-1m-2025-01.csv", csv)?;
//!
//! // One Parquet object per UTC month, under a hive-style key.
//! let mut store = std::collections::BTreeMap::new();
//! for (month, part) in layout::split_by_month(&bars) {
//!     let key = layout::partition_key("BTCUSDT", Timeframe::M1, month)?;
//!     store.insert(key, parquet::bars_to_parquet(&part)?);
//! }
//! let key = "bars/v1/symbol=BTCUSDT/timeframe=1m/month=2025-01.parquet";
//! let back = parquet::bars_from_parquet(store[key].clone())?;
//! assert_eq!(back, bars);
//!
//! // What is held, and whether a window is covered.
//! let coverage = Coverage::from_bars("BTCUSDT", Timeframe::M1, &back)?;
//! assert!(coverage.check(1_735_689_600_000, 1_735_689_660_000).is_ok());
//! let err = coverage.check(1_735_689_600_000, 1_735_689_720_000).unwrap_err();
//! assert!(err.to_string().starts_with("BTCUSDT 1m has data from 2025-01-01T00:00:00Z to 2025-01-01T00:01:00Z"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod columns;
pub mod coverage;
pub mod csv;
pub mod generate;
pub mod ingest;
pub mod layout;
pub mod parquet;
pub mod resample;
pub mod time;

pub use pipai_engine::bars::{Bar, Bars, BarsError, Timeframe};

pub use crate::columns::BarColumns;
pub use crate::coverage::{replace_range, Coverage, CoverageError, Gap, Uncovered};
pub use crate::csv::{parse_klines, read_klines, CsvError, RowError};
pub use crate::generate::{generate_1m, Preset};
pub use crate::ingest::{EncodedPartition, IngestError, IngestPlan, IngestReport};
pub use crate::layout::{partition_key, split_by_month};
pub use crate::parquet::{
    bars_from_parquet, bars_from_parquet_files, bars_from_parquet_files_releasing, bars_to_parquet, ParquetBarsError,
};
pub use crate::resample::{resample, resample_columns, resample_each};
pub use crate::time::Month;
