//! The downloadable files of a done job (API.md part 2, "Artifacts and provenance of a done
//! job"; columns and types in `docs/api.md`, "Artifacts"), written to bytes: no AWS, no file
//! system except [`write_dir`]. The worker uploads the bytes; `pipai run --artifacts DIR` writes
//! them to a directory.
//!
//! - `equity.parquet`, `equity.csv`: one row per simulated bar, `open_time`, `equity` (at the
//!   bar's close; the last after the end-of-window close), `drawdown` (`equity / peak - 1`, the
//!   per-bar series `max_drawdown` is the minimum of). Both floats are the engine's own `f64`s.
//! - `trades.parquet`, `trades.csv`: the result's trades, money, prices and quantities as the
//!   result's decimals (Parquet `DECIMAL(38, 8)`).
//! - `bars.parquet`: the bars simulated, in the market-data file schema, written by
//!   `pipai_market_data::parquet` (a job of several symbols: `bars-SYMBOL.parquet` per symbol).
//! - `report.html`: made elsewhere; [`ArtifactFile::report_html`] wraps its bytes for the list.
//!
//! ```no_run
//! # fn demo(backtest: &pipai_engine::Backtest, config: &pipai_engine::JobConfig, data: &[pipai_engine::Bars]) -> Result<(), Box<dyn std::error::Error>> {
//! let mut files = pipai_artifacts::write_all(backtest, config, data)?;
//! # let report_bytes = Vec::new();
//! files.push(pipai_artifacts::ArtifactFile::report_html(report_bytes)); // the report crate's page
//! for f in &files {
//!     println!("{} {} bytes ({})", f.name, f.bytes(), f.format.content_type());
//! }
//! pipai_artifacts::write_dir(&files, std::path::Path::new("out"))?;
//! # Ok(()) }
//! ```

use std::path::Path;

use pipai_engine::{Backtest, Bars, JobConfig};
use serde::{Deserialize, Serialize};

pub mod equity;
mod parquet_out;
pub mod text;
pub mod trades;

/// What a file holds (the API's `content`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Content {
    Equity,
    Trades,
    Bars,
    Report,
}

/// How a file is encoded (the API's `format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Parquet,
    Csv,
    Html,
}

impl Format {
    /// The `Content-Type` to store and serve the file with.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Parquet => "application/vnd.apache.parquet",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Html => "text/html; charset=utf-8",
        }
    }
}

/// One file, in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactFile {
    pub name: String,
    pub content: Content,
    pub format: Format,
    pub data: Vec<u8>,
}

/// A file as the API lists it, without its `url` (which the service adds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileEntry<'a> {
    pub name: &'a str,
    pub content: Content,
    pub format: Format,
    pub bytes: u64,
}

impl ArtifactFile {
    fn new(name: impl Into<String>, content: Content, format: Format, data: Vec<u8>) -> ArtifactFile {
        ArtifactFile { name: name.into(), content, format, data }
    }

    /// The hook for `report.html` (written by the report crate): its bytes, as a file of the list.
    pub fn report_html(data: Vec<u8>) -> ArtifactFile {
        ArtifactFile::new("report.html", Content::Report, Format::Html, data)
    }

    pub fn bytes(&self) -> u64 {
        self.data.len() as u64
    }

    /// The API's `files` entry, minus `url`.
    pub fn entry(&self) -> FileEntry<'_> {
        FileEntry { name: &self.name, content: self.content, format: self.format, bytes: self.bytes() }
    }
}

/// Why the files could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// `data` is not the series the run was given.
    #[error("the bars given are not the ones the run simulated")]
    BarsMismatch,
    #[error("parquet: {0}")]
    Parquet(#[from] ::parquet::errors::ParquetError),
    #[error("bars.parquet: {0}")]
    Bars(#[from] pipai_market_data::ParquetBarsError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Every file of a finished run but `report.html`: `backtest` is the run of `config` on `data`
/// (the series given to `pipai_engine::run`, in `config.symbols` order). In this order:
/// `equity.parquet`, `equity.csv`, `trades.parquet`, `trades.csv`, `bars.parquet` (or one
/// `bars-SYMBOL.parquet` per symbol).
pub fn write_all(backtest: &Backtest, config: &JobConfig, data: &[Bars]) -> Result<Vec<ArtifactFile>, ArtifactError> {
    files(backtest, config, data)?.collect()
}

/// [`write_all`]'s files one at a time, each made when the iterator reaches it, so that a caller
/// uploading them holds one file's bytes at once (the worker: ~1.1 GB in all for the largest
/// job). The bars are checked against the run before the first file.
pub fn files<'a>(
    backtest: &'a Backtest,
    config: &'a JobConfig,
    data: &'a [Bars],
) -> Result<impl Iterator<Item = Result<ArtifactFile, ArtifactError>> + 'a, ArtifactError> {
    if data.len() != config.symbols.len()
        || backtest.windows.len() != data.len()
        || backtest.windows.iter().zip(data).any(|(w, bars)| w.end > bars.len())
    {
        return Err(ArtifactError::BarsMismatch);
    }
    let rows = equity::EquityRows::of(backtest, config, data)?;
    let trades = &backtest.result.trades;
    let file = move |i: usize| -> Result<ArtifactFile, ArtifactError> {
        Ok(match i {
            0 => ArtifactFile::new("equity.parquet", Content::Equity, Format::Parquet, rows.to_parquet()?),
            1 => ArtifactFile::new("equity.csv", Content::Equity, Format::Csv, rows.to_csv()),
            2 => ArtifactFile::new("trades.parquet", Content::Trades, Format::Parquet, trades::to_parquet(trades)?),
            3 => ArtifactFile::new("trades.csv", Content::Trades, Format::Csv, trades::to_csv(trades)),
            _ => {
                let s = i - 4;
                let symbol = &config.symbols[s];
                let bytes = pipai_market_data::bars_to_parquet(&data[s].slice(backtest.windows[s].clone()))?;
                ArtifactFile::new(bars_file_name(&config.symbols, symbol), Content::Bars, Format::Parquet, bytes)
            }
        })
    };
    Ok((0..4 + data.len()).map(file))
}

/// The name of the bars file of `symbol` in a job trading `symbols`.
pub fn bars_file_name(symbols: &[String], symbol: &str) -> String {
    if symbols.len() == 1 {
        "bars.parquet".to_string()
    } else {
        format!("bars-{symbol}.parquet")
    }
}

/// The bars each symbol's run simulated, exactly, in the market-data file schema.
pub fn bars_files(backtest: &Backtest, config: &JobConfig, data: &[Bars]) -> Result<Vec<ArtifactFile>, ArtifactError> {
    files(backtest, config, data)?.skip(4).collect()
}

/// Writes each file into `dir` (created if missing) under its name.
pub fn write_dir(files: &[ArtifactFile], dir: &Path) -> Result<(), ArtifactError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| ArtifactError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    for f in files {
        let path = dir.join(&f.name);
        std::fs::write(&path, &f.data).map_err(io(&path))?;
    }
    Ok(())
}
