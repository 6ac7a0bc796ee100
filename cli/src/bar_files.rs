//! Reading bar files (Binance kline dumps, plain CSV, the market data's Parquet files) for
//! `pipai run` and `pipai data ingest`: one file, or one symbol's bars in several files (say its
//! month partitions, or a directory of them), concatenated in time order.

use std::ops::Range;
use std::path::{Path, PathBuf};

use pipai_engine::{Bars, Timeframe};
use pipai_market_data::csv::parse_file;
use pipai_market_data::csv::FileBytes;
use pipai_market_data::layout::append;
use pipai_market_data::{bars_from_parquet_files_releasing, resample, CsvError};

use crate::error::CliError;

/// The first bytes of a Parquet file.
const PARQUET_MAGIC: &[u8] = b"PAR1";

/// The interval of a series of bars (`name` says whose, in errors): the smallest step between
/// bars, which must be a supported timeframe.
pub fn file_timeframe(name: &str, bars: &Bars) -> Result<Timeframe, CliError> {
    let step = bars.open_time.windows(2).map(|w| w[1] - w[0]).min().unwrap_or(Timeframe::M1.millis());
    Timeframe::ALL.into_iter().find(|t| t.millis() == step).ok_or_else(|| {
        CliError::Data(format!("{name}: bars are {step} ms apart, which is none of 1m, 5m, 15m, 1h, 4h, 1d"))
    })
}

/// A bar file's bytes (mapped, not copied).
pub fn read_file(path: &Path) -> Result<FileBytes, CliError> {
    FileBytes::read(path).map_err(CliError::io(path))
}

/// The bar files `paths` name, in order: a file is itself, a directory stands for its bar files
/// (`*.parquet`, `*.csv`, `*.zip`; by name, so month partitions come in month order).
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, CliError> {
    let mut out = Vec::with_capacity(paths.len());
    for path in paths {
        if !path.is_dir() {
            out.push(path.clone());
            continue;
        }
        let mut files = Vec::new();
        for entry in std::fs::read_dir(path).map_err(CliError::io(path))? {
            let file = entry.map_err(CliError::io(path))?.path();
            let ext = file.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
            if file.is_file() && matches!(ext.as_deref(), Some("parquet" | "csv" | "zip")) {
                files.push(file);
            }
        }
        if files.is_empty() {
            return Err(CliError::Data(format!("{}: no bar files (*.parquet, *.csv, *.zip) in it", path.display())));
        }
        files.sort();
        out.extend(files);
    }
    Ok(out)
}

/// What to call the bars of `files` in messages: the file, or the first and the count.
pub fn series_name(files: &[PathBuf]) -> String {
    match files {
        [one] => one.display().to_string(),
        [first, ..] => format!("{} and {} more file(s)", first.display(), files.len() - 1),
        [] => "no files".into(),
    }
}

/// Maps every file (see [`read_file`]).
pub fn read_files(paths: &[PathBuf]) -> Result<Vec<(PathBuf, FileBytes)>, CliError> {
    paths.iter().map(|p| Ok((p.clone(), read_file(p)?))).collect()
}

/// Bars of one symbol from one or several files, each read strictly: Parquet (detected by its
/// magic bytes) as the market-data bucket stores it, or a kline CSV or zip (file, line and reason
/// on the first bad row; a mapped CSV's pages given back as they are parsed), concatenated
/// in time order (files sorted by their first bar), a file that overlaps another refused. Parquet
/// files only: decoded at once, the columns on every core, into one allocation.
pub fn parse_series(files: Vec<(PathBuf, FileBytes)>) -> Result<Bars, CliError> {
    let (paths, bytes): (Vec<PathBuf>, Vec<FileBytes>) = files.into_iter().unzip();
    let (bars, ranges) = if bytes.iter().all(|b| b.starts_with(PARQUET_MAGIC)) {
        parquet_series(&paths, bytes)?
    } else {
        let mut all = Bars::default();
        let mut ranges = Vec::with_capacity(paths.len());
        let sizes: Vec<usize> = bytes.iter().map(|b| b.len()).collect();
        for (path, bytes) in paths.iter().zip(bytes) {
            let bars = if bytes.starts_with(PARQUET_MAGIC) {
                parquet_series(std::slice::from_ref(path), vec![bytes])?.0
            } else {
                let name = path.display().to_string();
                parse_file(&name, &bytes).map_err(|e| match e {
                    CsvError::Io { file, source } => CliError::Io { path: file, source },
                    other => CliError::Data(other.to_string()),
                })?
            };
            if paths.len() == 1 {
                ranges.push(0..bars.len());
                all = bars;
            } else {
                if ranges.is_empty() {
                    // Room for every file's bars at the first file's bars per byte (and 5%), so
                    // that appending the files does not regrow (and copy) the columns; room not
                    // used is never touched, so it costs no memory.
                    let total: usize = sizes.iter().sum();
                    let per_byte = bars.len() as f64 / sizes[0].max(1) as f64;
                    all = pipai_market_data::layout::bars_with_capacity((total as f64 * per_byte * 1.05) as usize);
                }
                ranges.push(all.len()..all.len() + bars.len());
                append(&mut all, &bars);
            }
        }
        (all, ranges)
    };
    in_time_order(&paths, bars, ranges)
}

/// Decodes Parquet files into one `Bars`, with the rows of each.
fn parquet_series(paths: &[PathBuf], bytes: Vec<FileBytes>) -> Result<(Bars, Vec<Range<usize>>), CliError> {
    // Each file's pages are given back once its columns are decoded (see `FileBytes::release`).
    let (files, bytes): (Vec<_>, Vec<_>) = bytes.into_iter().map(FileBytes::into_shared).unzip();
    let (bars, rows) = bars_from_parquet_files_releasing(bytes, &|i, part| files[i].release(part))
        .map_err(|(i, e)| CliError::Data(format!("{}: {e}", paths[i].display())))?;
    let mut at = 0;
    let ranges = rows
        .into_iter()
        .map(|n| {
            at += n;
            at - n..at
        })
        .collect();
    Ok((bars, ranges))
}

/// `bars`, made of the rows `ranges[k]` of `paths[k]`, with the files in the order of their
/// first bars; an empty file or files that overlap are refused.
fn in_time_order(paths: &[PathBuf], bars: Bars, ranges: Vec<Range<usize>>) -> Result<Bars, CliError> {
    if let Some(k) = ranges.iter().position(|r| r.is_empty()) {
        return Err(CliError::Data(format!("{}: no bars", paths[k].display())));
    }
    let mut order: Vec<usize> = (0..paths.len()).collect();
    order.sort_by_key(|&k| bars.open_time[ranges[k].start]);
    for pair in order.windows(2) {
        let (prev, next) = (&ranges[pair[0]], &ranges[pair[1]]);
        let last = bars.open_time[prev.end - 1];
        if bars.open_time[next.start] <= last {
            return Err(CliError::Data(format!(
                "{} overlaps {} (both hold bars at or before {})",
                paths[pair[1]].display(),
                paths[pair[0]].display(),
                pipai_engine::time::iso(last)
            )));
        }
    }
    if order.iter().enumerate().all(|(i, &k)| i == k) {
        return Ok(bars);
    }
    let mut sorted = Bars::with_capacity(bars.len());
    for k in order {
        append(&mut sorted, &bars.slice(ranges[k].clone()));
    }
    Ok(sorted)
}

/// Brings bars to `timeframe` (aggregating finer bars); `name` says whose, in messages.
pub fn to_timeframe(symbol: &str, name: &str, bars: Bars, timeframe: Timeframe) -> Result<Bars, CliError> {
    let file_tf = file_timeframe(name, &bars)?;
    if file_tf == timeframe {
        Ok(bars)
    } else if file_tf < timeframe && timeframe.millis() % file_tf.millis() == 0 {
        eprintln!("note: {symbol}: aggregating {file_tf} bars from {name} to {timeframe}");
        Ok(resample(&bars, timeframe))
    } else {
        Err(CliError::Data(format!("{name}: holds {file_tf} bars, too coarse for the job's {timeframe} timeframe")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipai_market_data::csv::write_plain;
    use pipai_market_data::generate::{Preset, PRESET_ANCHOR_MS};

    /// Reads one bar file.
    fn read_bars(path: &Path) -> Result<Bars, CliError> {
        parse_bars(path, read_file(path)?)
    }

    /// Parses one bar file's bytes.
    fn parse_bars(path: &Path, bytes: FileBytes) -> Result<Bars, CliError> {
        parse_series(vec![(path.to_path_buf(), bytes)])
    }

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

    /// Reads the files `paths` name (directories expanded) as one series.
    fn read_series(paths: &[PathBuf]) -> Result<Bars, CliError> {
        parse_series(read_files(&expand(paths)?)?)
    }

    #[test]
    fn month_files_and_directories_join_in_time_order() {
        // Three months, more than the rows decoded on one thread.
        let start = PRESET_ANCHOR_MS;
        let bars = Preset::btcusdt().generate(start, pipai_market_data::Month::new(2024, 4).unwrap().start_ms());
        let dir = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        for (month, part) in pipai_market_data::split_by_month(&bars) {
            let path = dir.path().join(format!("month={month}.parquet"));
            std::fs::write(&path, pipai_market_data::bars_to_parquet(&part).unwrap()).unwrap();
            paths.push(path);
        }
        assert_eq!(read_series(&paths).unwrap(), bars);
        assert_eq!(read_series(&[dir.path().to_path_buf()]).unwrap(), bars);
        // Given out of order: sorted by their first bar.
        assert_eq!(read_series(&[paths[2].clone(), paths[0].clone(), paths[1].clone()]).unwrap(), bars);
        // CSV and Parquet mixed.
        let csv = dir.path().join("february.csv");
        let feb = bars.slice(bars.window(paths_first(&bars, 1), paths_first(&bars, 2) - 1));
        std::fs::write(&csv, write_plain(&feb)).unwrap();
        assert_eq!(read_series(&[paths[0].clone(), csv.clone(), paths[2].clone()]).unwrap(), bars);
        // The same month twice, or overlapping files: refused, naming both.
        let err = read_series(&[paths[1].clone(), csv.clone()]).unwrap_err().to_string();
        assert!(err.contains("overlaps") && err.contains("february.csv") && err.contains("month=2024-02"), "{err}");
        let err = read_series(&[paths[0].clone(), paths[0].clone()]).unwrap_err().to_string();
        assert!(err.contains("overlaps"), "{err}");
        // A broken file among them is named.
        let broken = dir.path().join("broken.parquet");
        std::fs::write(&broken, b"PAR1 not really").unwrap();
        let err = read_series(&[paths[0].clone(), broken.clone()]).unwrap_err().to_string();
        assert!(err.starts_with(&broken.display().to_string()), "{err}");
        let empty = tempfile::tempdir().unwrap();
        let err = read_series(&[empty.path().to_path_buf()]).unwrap_err().to_string();
        assert!(err.contains("no bar files"), "{err}");
    }

    /// The open time of the first bar of the `k`-th month of `bars`.
    fn paths_first(bars: &Bars, k: usize) -> i64 {
        pipai_market_data::split_by_month(bars)[k].0.start_ms()
    }
}
