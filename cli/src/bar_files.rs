//! Reading bar files (Binance kline dumps, plain CSV) for `pipai run` and `pipai data ingest`.

use std::path::Path;

use pipai_engine::{Bars, Timeframe};
use pipai_market_data::{read_klines, resample, CsvError};

use crate::error::CliError;

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
    let bars = read_klines(path).map_err(|e| match e {
        CsvError::Io { file, source } => CliError::Io { path: file, source },
        other => CliError::Data(other.to_string()),
    })?;
    if bars.is_empty() {
        return Err(CliError::Data(format!("{}: no bars", path.display())));
    }
    Ok(bars)
}

/// Reads a bar file and brings it to `timeframe` (aggregating finer bars).
pub fn load_bars(symbol: &str, path: &Path, timeframe: Timeframe) -> Result<Bars, CliError> {
    let bars = read_bars(path)?;
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
