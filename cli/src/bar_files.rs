//! Reading bar files (Binance kline dumps, plain CSV, the market data's Parquet files) for
//! `pipai run` and `pipai data ingest`.

use std::path::Path;

use pipai_engine::{Bars, Timeframe};
use pipai_market_data::csv::parse_file;
use pipai_market_data::csv::FileBytes;
use pipai_market_data::{bars_from_parquet, resample, CsvError};

use crate::error::CliError;

/// The first bytes of a Parquet file.
const PARQUET_MAGIC: &[u8] = b"PAR1";

/// The interval of a bar file: the smallest step between bars, which must be a supported timeframe.
pub fn file_timeframe(path: &Path, bars: &Bars) -> Result<Timeframe, CliError> {
    let step = bars.open_time.windows(2).map(|w| w[1] - w[0]).min().unwrap_or(Timeframe::M1.millis());
    Timeframe::ALL.into_iter().find(|t| t.millis() == step).ok_or_else(|| {
        CliError::Data(format!(
            "{}: bars are {step} ms apart, which is none of 1m, 5m, 15m, 1h, 4h, 1d",
            path.display()
        ))
    })
}

/// Reads a bar file, strictly (file, line and reason on the first bad row).
pub fn read_bars(path: &Path) -> Result<Bars, CliError> {
    parse_bars(path, read_file(path)?)
}

/// A bar file's bytes (mapped, not copied).
pub fn read_file(path: &Path) -> Result<FileBytes, CliError> {
    FileBytes::read(path).map_err(CliError::io(path))
}

/// Parses a bar file's bytes, read from `path`: Parquet (detected by its magic bytes) as the
/// market-data bucket stores it, or a kline CSV or zip, strictly (file, line and reason on the
/// first bad row). A mapped CSV's pages are given back as they are parsed.
pub fn parse_bars(path: &Path, bytes: FileBytes) -> Result<Bars, CliError> {
    let name = path.display().to_string();
    let bars = if bytes.starts_with(PARQUET_MAGIC) {
        bars_from_parquet(bytes).map_err(|e| CliError::Data(format!("{name}: {e}")))?
    } else {
        parse_file(&name, &bytes).map_err(|e| match e {
            CsvError::Io { file, source } => CliError::Io { path: file, source },
            other => CliError::Data(other.to_string()),
        })?
    };
    if bars.is_empty() {
        return Err(CliError::Data(format!("{name}: no bars")));
    }
    Ok(bars)
}

/// Brings a file's bars to `timeframe` (aggregating finer bars).
pub fn to_timeframe(symbol: &str, path: &Path, bars: Bars, timeframe: Timeframe) -> Result<Bars, CliError> {
    let file_tf = file_timeframe(path, &bars)?;
    if file_tf == timeframe {
        Ok(bars)
    } else if file_tf < timeframe && timeframe.millis() % file_tf.millis() == 0 {
        eprintln!("note: {symbol}: aggregating {file_tf} bars from {} to {timeframe}", path.display());
        Ok(resample(&bars, timeframe))
    } else {
        Err(CliError::Data(format!(
            "{}: holds {file_tf} bars, too coarse for the job's {timeframe} timeframe",
            path.display()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipai_market_data::csv::write_plain;
    use pipai_market_data::generate::{Preset, PRESET_ANCHOR_MS};

    #[test]
    fn csv_and_parquet_files_read_alike() {
        let bars = Preset::btcusdt().generate(PRESET_ANCHOR_MS, PRESET_ANCHOR_MS + 90 * 60_000);
        let dir = tempfile::tempdir().unwrap();
        let (csv, parquet) = (dir.path().join("b.csv"), dir.path().join("b.parquet"));
        std::fs::write(&csv, write_plain(&bars)).unwrap();
        std::fs::write(&parquet, pipai_market_data::bars_to_parquet(&bars).unwrap()).unwrap();
        assert_eq!(read_bars(&csv).unwrap(), bars);
        assert_eq!(read_bars(&parquet).unwrap(), bars);
        let err = parse_bars(&parquet, FileBytes::Read(b"PAR1 not really".to_vec())).unwrap_err();
        assert!(matches!(err, CliError::Data(ref m) if m.starts_with(&parquet.display().to_string())), "{err}");
        let err = read_bars(&dir.path().join("missing.csv")).unwrap_err();
        assert!(matches!(err, CliError::Io { .. }), "{err}");
    }
}
