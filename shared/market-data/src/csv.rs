//! Strict parsing of exchange kline dumps into [`Bars`].
//!
//! # Accepted inputs
//!
//! [`parse_klines`] takes a file's name (only for error messages) and its bytes, and detects:
//!
//! - **A zip archive** (bytes start with `PK\x03\x04`, as the files Binance's public data dump
//!   ships): the archive must hold exactly one file, or exactly one `*.csv` among others; that
//!   CSV is inflated a few MiB at a time and parsed as it comes (never extracted to disk, never
//!   held whole: [`parse_zip`]), as below. Errors then name the file `archive.zip/inner.csv`.
//! - **A Binance kline CSV**: 12 columns `open_time, open, high, low, close, volume, close_time,
//!   quote_asset_volume, number_of_trades, taker_buy_base_volume, taker_buy_quote_volume, ignore`,
//!   with or without a header row (the header is recognised by its first field being the text
//!   `open_time`; spot dumps have none, futures dumps have one). Only the first six columns are
//!   used; the other six must be present but are not checked.
//! - **A plain CSV** with exactly the header `open_time,open,high,low,close,volume`
//!   (case-insensitive; `timestamp` or `time` is accepted for the first column). The header is
//!   required for this form. `open_time` is integer milliseconds (the same µs rule below applies)
//!   or ISO 8601 UTC exactly as the API writes it, `2025-01-01T00:00:00Z` (optionally `.sss`
//!   before the `Z`; see [`pipai_engine::time::parse_iso_ms`]). Offsets, a missing `Z` and other
//!   ISO 8601 variants are refused.
//!
//! # Milliseconds or microseconds
//!
//! Binance switched its spot dumps from millisecond to microsecond timestamps on 2025-01-01. The
//! unit is decided **per file from the magnitude of the first data row's `open_time`**:
//! a value `>= 10^14` is microseconds (`10^14` ms would be the year 5138, while `10^14` µs is
//! 1973-03-03), anything smaller is milliseconds. Every later row must be of the same magnitude
//! class (a file mixing units is an error), a microsecond value must be a whole millisecond, and
//! a millisecond value below `10^11` (1973-03-03) is refused as out of range (it is most likely
//! seconds). Microseconds are divided by 1000: [`Bars`] always hold UTC milliseconds.
//!
//! # Strictness
//!
//! Every row must parse, or the whole file is rejected with a [`CsvError::Row`] that carries the
//! file name, the 1-based line number and a [`RowError`] reason: wrong column count, a field that
//! is not a (finite) number, a non-positive price, `high < low`, open or close outside
//! `[low, high]`, a negative volume, or an `open_time` that is not after the previous row's
//! (duplicate or unsorted). What is accepted therefore always passes [`Bars::validate`].
//! Blank lines are skipped; a UTF-8 byte-order mark and `\r\n` line ends are fine.
//!
//! # Speed
//!
//! One pass over the bytes: lines are split at `\n`, fields at `,` into a stack array of slices
//! (kline dumps contain no quoted commas; one pair of surrounding quotes on a field is dropped),
//! numbers parsed straight from the slices. No allocation per row (strings are only built for an
//! error); the output columns are allocated once from a count of the lines. Line numbers are
//! physical lines of the file, blank lines included.

use std::fmt::{self, Write as _};
use std::io::Read;
use std::path::Path;

use pipai_engine::bars::{Bar, Bars};

use pipai_engine::time::{iso, parse_iso_ms};

mod chunked;

pub(crate) use chunked::on_each;

/// Columns of a Binance kline CSV.
pub const BINANCE_COLUMNS: usize = 12;
/// The header of the plain form.
pub const PLAIN_HEADER: [&str; 6] = ["open_time", "open", "high", "low", "close", "volume"];
/// Integer `open_time` values at or above this are microseconds (see the module doc).
pub const MICROS_THRESHOLD: i64 = 100_000_000_000_000;
/// Millisecond `open_time` values below this (1973-03-03) are refused (probably seconds).
pub const MIN_MILLIS: i64 = 100_000_000_000;
/// Microsecond values at or above this (year 5138) are refused.
pub const MAX_MICROS: i64 = 100_000_000_000_000_000;
/// Largest CSV read out of a zip archive (guards against zip bombs).
pub const MAX_UNZIPPED_BYTES: u64 = 4 << 30;

/// The layout of a parsed file, as detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KlineFormat {
    /// 12-column Binance kline dump, with or without header row.
    Binance { header: bool },
    /// `open_time,open,high,low,close,volume` with header.
    Plain,
}

/// Unit of integer `open_time` values in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    Millis,
    Micros,
}

impl fmt::Display for TimeUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeUnit::Millis => "milliseconds",
            TimeUnit::Micros => "microseconds",
        })
    }
}

/// Why one row was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RowError {
    #[error("expected {expected} columns, found {found}")]
    ColumnCount { expected: usize, found: usize },
    #[error("{column} {value:?} is not a number")]
    NotNumeric { column: &'static str, value: String },
    #[error("{column} {value:?} is not a finite number")]
    NotFinite { column: &'static str, value: String },
    #[error("open_time {value:?} is neither an integer nor an ISO 8601 UTC time like 2025-01-01T00:00:00Z")]
    BadTime { value: String },
    #[error("open_time {value} is out of range (milliseconds must be >= 10^11, microseconds < 10^17)")]
    TimeOutOfRange { value: i64 },
    #[error("open_time {value} is in {found} but the file's first row is in {file}")]
    MixedTimeUnit { value: i64, found: TimeUnit, file: TimeUnit },
    #[error("open_time {value} microseconds is not a whole millisecond")]
    SubMillisecond { value: i64 },
    #[error("{column} {value} is not positive")]
    NonPositivePrice { column: &'static str, value: f64 },
    #[error("high {high} is below low {low}")]
    HighBelowLow { high: f64, low: f64 },
    #[error("open {open} or close {close} is outside low {low} .. high {high}")]
    OutsideRange { open: f64, high: f64, low: f64, close: f64 },
    #[error("volume {value} is negative")]
    NegativeVolume { value: f64 },
    #[error("duplicate open_time {} (same as the previous row)", Ms(*.time))]
    Duplicate { time: i64 },
    #[error("open_time {} is before the previous row's {}: rows are not sorted", Ms(*.time), Ms(*.previous))]
    Unsorted { time: i64, previous: i64 },
}

/// A millisecond timestamp shown as ISO 8601 and raw value.
struct Ms(i64);

impl fmt::Display for Ms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", iso(self.0), self.0)
    }
}

/// Why a file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("{file} line {line}: {reason}")]
    Row { file: String, line: u64, reason: RowError },
    #[error("{file}: {reason}")]
    Format { file: String, reason: String },
    #[error("{file}: not a readable zip archive: {reason}")]
    Zip { file: String, reason: String },
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
}

impl CsvError {
    /// The 1-based line of a row error.
    pub fn line(&self) -> Option<u64> {
        match self {
            CsvError::Row { line, .. } => Some(*line),
            _ => None,
        }
    }

    /// The reason of a row error.
    pub fn row_error(&self) -> Option<&RowError> {
        match self {
            CsvError::Row { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

/// True when `bytes` start like a zip archive (local file header or empty-archive marker).
pub fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06")
}

/// Parses a kline file (zip or CSV, format detected; see the module doc). `name` is used only in
/// error messages.
pub fn parse_klines(name: &str, bytes: &[u8]) -> Result<Bars, CsvError> {
    if is_zip(bytes) {
        parse_zip(name, bytes).map(|(bars, _)| bars)
    } else {
        parse_csv(name, bytes).map(|(bars, _)| bars)
    }
}

/// Reads and parses a kline file from the file system ([`parse_file`] on its contents).
pub fn read_klines(path: impl AsRef<Path>) -> Result<Bars, CsvError> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let bytes = FileBytes::read(path).map_err(|source| CsvError::Io { file: name.clone(), source })?;
    parse_file(&name, &bytes)
}

/// [`parse_klines`] on a file's bytes, giving back a mapped CSV's pages as they are parsed (see
/// [`FileBytes::release`]): the file is never held whole beside the bars.
pub fn parse_file(name: &str, file: &FileBytes) -> Result<Bars, CsvError> {
    if is_zip(file) {
        return parse_klines(name, file);
    }
    chunked::parse(name, file, chunked::chunk_count(file.len()), &|part| file.release(part)).map(|(bars, _)| bars)
}

/// A file's bytes, mapped into memory when it is a regular file (a year of 1m bars is 30 MB of
/// CSV: mapped, it is neither copied nor held twice), else read.
pub enum FileBytes {
    Mapped(memmap2::Mmap),
    Read(Vec<u8>),
}

impl FileBytes {
    pub fn read(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::File::open(path)?;
        let meta = file.metadata()?;
        if meta.is_file() && meta.len() > 0 {
            // SAFETY: the map is only read. A file truncated by another process while it is
            // parsed can fault the read (SIGBUS); that is the price of not copying it, as for any
            // tool that maps its input.
            // Not populated: the parser reads the pages in order and gives them back as it goes.
            if let Ok(map) = unsafe { memmap2::MmapOptions::new().map(&file) } {
                return Ok(FileBytes::Mapped(map));
            }
        }
        let mut bytes = Vec::new();
        (&file).read_to_end(&mut bytes)?;
        Ok(FileBytes::Read(bytes))
    }
}

impl FileBytes {
    /// Gives back the memory of the whole pages inside `part` (a stretch of these bytes) when
    /// they are mapped: the kernel drops them from this process and reads them again from the
    /// page cache if they are touched again. Bytes read into memory stay, and so does anything
    /// when `part` is not within these bytes.
    pub fn release(&self, part: &[u8]) {
        let FileBytes::Mapped(map) = self else { return };
        let page = page_size();
        let Some(at) = (part.as_ptr() as usize).checked_sub(map.as_ptr() as usize) else { return };
        let (start, end) = (at.next_multiple_of(page), (at + part.len()) / page * page);
        if start < end && end <= map.len() {
            // SAFETY: the mapping is a read-only shared mapping of a file: dropped pages are
            // read back from the file, so the bytes seen never change. A failure only means the
            // pages stay.
            let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start) };
        }
    }
}

/// The size of a memory page.
fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
}

impl FileBytes {
    /// The file's bytes for the Parquet reader, without a copy, and the file, to give back the
    /// pages the reader is done with ([`FileBytes::release`]) while it holds the bytes.
    pub fn into_shared(self) -> (std::sync::Arc<FileBytes>, bytes::Bytes) {
        let file = std::sync::Arc::new(self);
        (file.clone(), bytes::Bytes::from_owner(SharedFile(file)))
    }
}

/// A file's bytes owned by several.
struct SharedFile(std::sync::Arc<FileBytes>);

impl AsRef<[u8]> for SharedFile {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// The file's bytes for the Parquet reader, without a copy.
impl From<FileBytes> for bytes::Bytes {
    fn from(file: FileBytes) -> bytes::Bytes {
        match file {
            FileBytes::Read(bytes) => bytes.into(),
            mapped => bytes::Bytes::from_owner(mapped),
        }
    }
}

impl AsRef<[u8]> for FileBytes {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl std::ops::Deref for FileBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Mapped(map) => map,
            FileBytes::Read(bytes) => bytes,
        }
    }
}

/// Parses the single CSV inside a zip archive (exactly one file, or exactly one whose name ends
/// in `.csv`), streamed: inflated a few MiB at a time and parsed as it comes (see
/// [`chunked::parse_stream`]), never extracted, never held whole. Errors name the file
/// `archive.zip/inner.csv`.
pub fn parse_zip(name: &str, bytes: &[u8]) -> Result<(Bars, KlineFormat), CsvError> {
    let zip_err = |e: zip::result::ZipError| CsvError::Zip { file: name.to_string(), reason: e.to_string() };
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(zip_err)?;
    let mut files = Vec::new();
    for i in 0..archive.len() {
        let f = archive.by_index(i).map_err(zip_err)?;
        if !f.is_dir() {
            files.push((i, f.name().map_err(zip_err)?.into_owned()));
        }
    }
    let chosen = if files.len() == 1 {
        files.pop()
    } else {
        let mut csvs: Vec<_> = files.iter().filter(|(_, n)| n.to_ascii_lowercase().ends_with(".csv")).collect();
        if csvs.len() == 1 {
            csvs.pop().cloned()
        } else {
            None
        }
    };
    let Some((index, inner)) = chosen else {
        let names: Vec<&str> = files.iter().map(|(_, n)| n.as_str()).collect();
        return Err(CsvError::Zip {
            file: name.to_string(),
            reason: format!("expected exactly one CSV inside, found {names:?}"),
        });
    };
    let mut f = archive.by_index(index).map_err(zip_err)?;
    let inner_name = format!("{name}/{inner}");
    let size = f.size();
    chunked::parse_stream(
        &inner_name,
        &mut f,
        chunked::STREAM_BLOCK_BYTES,
        size,
        MAX_UNZIPPED_BYTES,
        &|source| CsvError::Io { file: inner_name.clone(), source },
        &|| CsvError::Zip {
            file: name.to_string(),
            reason: format!("{inner} is larger than {MAX_UNZIPPED_BYTES} bytes"),
        },
    )
}

/// Parses CSV bytes (no zip detection) and tells which format was detected: the chunked parser
/// of [`chunked`], on every core for a large file. Gives exactly what [`parse_csv_reference`]
/// gives, bars and errors alike.
pub fn parse_csv(name: &str, bytes: &[u8]) -> Result<(Bars, KlineFormat), CsvError> {
    chunked::parse(name, bytes, chunked::chunk_count(bytes.len()), chunked::KEEP)
}

/// The plain sequential parser, one row after another with the standard library's float
/// parsing: the definition [`parse_csv`] is tested against (same bars, same errors).
pub fn parse_csv_reference(name: &str, bytes: &[u8]) -> Result<(Bars, KlineFormat), CsvError> {
    let head = Head::detect(name, bytes)?;
    let capacity = head.body.iter().filter(|&&b| b == b'\n').count() + 1;
    let mut bars = Bars::with_capacity(capacity);
    let mut state = RowState::new(head.format);
    let mut fields: Fields = [&[]; MAX_FIELDS];
    for (line, text) in (Lines { rest: head.body, line: head.lines_before }) {
        let n = split_fields(text, &mut fields);
        let (open_time, [open, high, low, close, volume]) =
            parse_row(&fields, n, head.expected, &mut state, parse_f64).map_err(|r| head.row_err(line, r))?;
        bars.push(Bar { open_time, open, high, low, close, volume });
    }
    head.finish(bars)
}

/// A file's detected layout and the bytes of its data rows.
struct Head<'a> {
    name: &'a str,
    format: KlineFormat,
    /// Columns every row must have.
    expected: usize,
    /// From the first data row (or the blank lines before it) to the end.
    body: &'a [u8],
    /// Physical lines before `body` (header and leading blank lines).
    lines_before: u64,
}

impl<'a> Head<'a> {
    /// Reads the first non-blank line: the header, or the first data row of a headerless dump.
    fn detect(name: &'a str, bytes: &'a [u8]) -> Result<Self, CsvError> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let format_err = |reason: String| CsvError::Format { file: name.to_string(), reason };
        let mut lines = Lines { rest: bytes, line: 0 };
        let mut fields: Fields = [&[]; MAX_FIELDS];
        let Some((first_line, text)) = lines.next() else {
            return Err(format_err("no rows".into()));
        };
        let ncols = split_fields(text, &mut fields);
        let first_field = fields[0].to_ascii_lowercase();
        let is_header = !first_field.first().is_some_and(|b| b.is_ascii_digit() || *b == b'-');
        let format = match (ncols, is_header) {
            (BINANCE_COLUMNS, false) => KlineFormat::Binance { header: false },
            (BINANCE_COLUMNS, true) if first_field == b"open_time" => KlineFormat::Binance { header: true },
            (6, true) => {
                let names: Vec<String> =
                    fields[..6].iter().map(|f| String::from_utf8_lossy(f).to_ascii_lowercase()).collect();
                let first_ok = matches!(names[0].as_str(), "open_time" | "timestamp" | "time");
                if !first_ok || names[1..] != PLAIN_HEADER[1..] {
                    return Err(format_err(format!(
                        "unrecognised header {names:?}: expected open_time,open,high,low,close,volume"
                    )));
                }
                KlineFormat::Plain
            }
            (6, false) => {
                return Err(format_err(
                    "a 6-column CSV needs the header row open_time,open,high,low,close,volume".into(),
                ))
            }
            (n, true) => {
                return Err(format_err(format!(
                    "unrecognised header with {n} columns: expected a 12-column Binance kline dump or \
                     open_time,open,high,low,close,volume"
                )))
            }
            (n, false) => {
                return Err(format_err(format!(
                    "{n} columns: expected a 12-column Binance kline dump or a 6-column CSV with header"
                )))
            }
        };
        let expected = match format {
            KlineFormat::Binance { .. } => BINANCE_COLUMNS,
            KlineFormat::Plain => 6,
        };
        let (body, lines_before) = if is_header {
            (lines.rest, first_line)
        } else {
            // `text` lies inside `bytes`: the data start at its first byte.
            let at = text.as_ptr() as usize - bytes.as_ptr() as usize;
            (&bytes[at..], first_line - 1)
        };
        Ok(Head { name, format, expected, body, lines_before })
    }

    fn row_err(&self, line: u64, reason: RowError) -> CsvError {
        CsvError::Row { file: self.name.to_string(), line, reason }
    }

    fn finish(&self, bars: Bars) -> Result<(Bars, KlineFormat), CsvError> {
        if bars.is_empty() {
            return Err(CsvError::Format { file: self.name.to_string(), reason: "no data rows".into() });
        }
        debug_assert!(bars.validate().is_ok());
        Ok((bars, self.format))
    }
}

/// `bars` as a plain CSV (header, millisecond `open_time`, floats in their shortest exact form):
/// what [`parse_csv`] reads back to the same bars.
pub fn write_plain(bars: &Bars) -> String {
    let mut out = String::with_capacity(bars.len() * 64 + 40);
    out.push_str("open_time,open,high,low,close,volume\n");
    for i in 0..bars.len() {
        let b = bars.get(i);
        let _ = writeln!(out, "{},{},{},{},{},{}", b.open_time, b.open, b.high, b.low, b.close, b.volume);
    }
    out
}

/// `bars` as a headerless 1m Binance kline dump with `open_time` and `close_time` in `unit`
/// (the columns after volume are filler).
pub fn write_binance(bars: &Bars, unit: TimeUnit) -> String {
    let scale = match unit {
        TimeUnit::Millis => 1,
        TimeUnit::Micros => 1000,
    };
    let mut out = String::with_capacity(bars.len() * 128);
    for i in 0..bars.len() {
        let b = bars.get(i);
        let (open_time, close_time) = (b.open_time * scale, (b.open_time + 60_000) * scale - 1);
        let _ = writeln!(
            out,
            "{open_time},{},{},{},{},{},{close_time},{},1234,{},{},0",
            b.open,
            b.high,
            b.low,
            b.close,
            b.volume,
            b.volume * b.close,
            b.volume / 2.0,
            b.volume * b.close / 2.0
        );
    }
    out
}

/// Fields kept per row; a row with more is reported with its true count but only these are kept.
const MAX_FIELDS: usize = 16;
type Fields<'a> = [&'a [u8]; MAX_FIELDS];

/// Non-blank lines with their 1-based line numbers (`\n` or `\r\n` ends).
struct Lines<'a> {
    rest: &'a [u8],
    line: u64,
}

impl<'a> Iterator for Lines<'a> {
    type Item = (u64, &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        while !self.rest.is_empty() {
            self.line += 1;
            let (text, rest) = match memchr::memchr(b'\n', self.rest) {
                Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
                None => (self.rest, &self.rest[self.rest.len()..]),
            };
            self.rest = rest;
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            if !text.trim_ascii().is_empty() {
                return Some((self.line, text));
            }
        }
        None
    }
}

/// Splits a line at commas into `out` (fields trimmed of ASCII spaces and of one pair of
/// surrounding double quotes); returns the number of fields. No quoting rules beyond that:
/// kline dumps contain no quoted commas.
#[inline]
fn split_fields<'a>(line: &'a [u8], out: &mut Fields<'a>) -> usize {
    let mut n = 0;
    for field in line.split(|&b| b == b',') {
        if n < MAX_FIELDS {
            out[n] = clean_field(field);
        }
        n += 1;
    }
    n
}

/// A field without surrounding ASCII spaces and one pair of surrounding double quotes.
#[inline]
fn clean_field(field: &[u8]) -> &[u8] {
    match field.trim_ascii() {
        [b'"', inner @ .., b'"'] => inner,
        f => f,
    }
}

struct RowState {
    /// Unit of integer times, fixed by the first row with an integer time.
    unit: Option<TimeUnit>,
    /// That row's raw `open_time` (what a mixed-unit error quotes).
    first_integer: Option<i64>,
    previous: Option<i64>,
    /// Whether ISO 8601 text is accepted for `open_time`.
    iso: bool,
}

impl RowState {
    fn new(format: KlineFormat) -> Self {
        RowState { unit: None, first_integer: None, previous: None, iso: format == KlineFormat::Plain }
    }
}

/// One row's `open_time` (UTC ms) and open, high, low, close, volume.
type Row = (i64, [f64; 5]);

/// Checks one split row against the file's rules and the previous row. `parse_float` turns a
/// field into a finite number or says why not (the standard library's for the reference).
#[inline]
fn parse_row(
    rec: &[&[u8]],
    n: usize,
    expected: usize,
    st: &mut RowState,
    parse_float: impl Fn(&[u8], &'static str) -> Result<f64, RowError>,
) -> Result<Row, RowError> {
    if n != expected {
        return Err(RowError::ColumnCount { expected, found: n });
    }
    let time = parse_time(rec[0], st)?;
    let open = parse_float(rec[1], "open")?;
    let high = parse_float(rec[2], "high")?;
    let low = parse_float(rec[3], "low")?;
    let close = parse_float(rec[4], "close")?;
    let volume = parse_float(rec[5], "volume")?;
    check_row(time, [open, high, low, close, volume], st)
}

/// The checks of a row whose fields parsed: prices, volume, order after the previous row.
#[inline]
fn check_row(time: i64, values: [f64; 5], st: &mut RowState) -> Result<Row, RowError> {
    let [open, high, low, close, volume] = values;
    for (column, value) in [("open", open), ("high", high), ("low", low), ("close", close)] {
        if value <= 0.0 {
            return Err(RowError::NonPositivePrice { column, value });
        }
    }
    if high < low {
        return Err(RowError::HighBelowLow { high, low });
    }
    if open < low || open > high || close < low || close > high {
        return Err(RowError::OutsideRange { open, high, low, close });
    }
    if volume < 0.0 {
        return Err(RowError::NegativeVolume { value: volume });
    }
    if let Some(previous) = st.previous {
        if time == previous {
            return Err(RowError::Duplicate { time });
        }
        if time < previous {
            return Err(RowError::Unsorted { time, previous });
        }
    }
    st.previous = Some(time);
    Ok((time, values))
}

#[inline]
fn parse_time(field: &[u8], st: &mut RowState) -> Result<i64, RowError> {
    let Some(value) = parse_i64(field) else {
        if st.iso {
            if let Some(ms) = std::str::from_utf8(field).ok().and_then(parse_iso_ms) {
                return Ok(ms);
            }
        }
        return Err(RowError::BadTime { value: String::from_utf8_lossy(field).into_owned() });
    };
    integer_time(value, st)
}

/// An integer `open_time` in UTC ms, its unit checked against the file's (see the module doc).
#[inline]
fn integer_time(value: i64, st: &mut RowState) -> Result<i64, RowError> {
    let found = if value >= MICROS_THRESHOLD { TimeUnit::Micros } else { TimeUnit::Millis };
    let file = match st.unit {
        Some(file) => file,
        None => {
            st.first_integer = Some(value);
            *st.unit.insert(found)
        }
    };
    if found != file {
        return Err(RowError::MixedTimeUnit { value, found, file });
    }
    match found {
        TimeUnit::Millis if value < MIN_MILLIS => Err(RowError::TimeOutOfRange { value }),
        TimeUnit::Millis => Ok(value),
        TimeUnit::Micros if value >= MAX_MICROS => Err(RowError::TimeOutOfRange { value }),
        TimeUnit::Micros if value % 1000 != 0 => Err(RowError::SubMillisecond { value }),
        TimeUnit::Micros => Ok(value / 1000),
    }
}

/// Strict decimal integer with optional leading `-`; `None` on anything else or overflow.
#[inline]
fn parse_i64(b: &[u8]) -> Option<i64> {
    let (neg, digits) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (d - b'0') as i64;
    }
    Some(if neg { -v } else { v })
}

#[inline]
fn parse_f64(field: &[u8], column: &'static str) -> Result<f64, RowError> {
    let parsed = std::str::from_utf8(field).ok().and_then(|s| s.parse::<f64>().ok());
    match parsed {
        Some(v) if v.is_finite() => Ok(v),
        Some(_) => Err(RowError::NotFinite { column, value: String::from_utf8_lossy(field).into_owned() }),
        None => Err(RowError::NotNumeric { column, value: String::from_utf8_lossy(field).into_owned() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipai_engine::time::ymd_ms;
    use std::io::Write;

    const T0: i64 = 1_735_689_600_000; // 2025-01-01T00:00:00Z

    fn binance_rows(us: bool) -> String {
        let mut s = String::new();
        for i in 0..3i64 {
            let t = T0 + i * 60_000;
            let (t, ct) = if us { (t * 1000, (t + 59_999) * 1000 + 999) } else { (t, t + 59_999) };
            let o = 93_576.0 + i as f64;
            s += &format!(
                "{t},{o:.8},{:.8},{:.8},{:.8},12.34567000,{ct},1155000.1,1000,6.1,570000.2,0\n",
                o + 10.0,
                o - 5.5,
                o + 1.25
            );
        }
        s
    }

    const BINANCE_HEADER: &str = "open_time,open,high,low,close,volume,close_time,quote_volume,count,\
                                  taker_buy_volume,taker_buy_quote_volume,ignore\n";

    fn check_three(bars: &Bars) {
        assert_eq!(bars.len(), 3);
        assert_eq!(bars.open_time, [T0, T0 + 60_000, T0 + 120_000]);
        assert_eq!(bars.open, [93_576.0, 93_577.0, 93_578.0]);
        assert_eq!(bars.high[0], 93_586.0);
        assert_eq!(bars.low[0], 93_570.5);
        assert_eq!(bars.close[2], 93_579.25);
        assert_eq!(bars.volume, [12.34567; 3]);
        bars.validate().unwrap();
    }

    #[test]
    fn binance_without_header_ms_and_us() {
        let (ms, f) = parse_csv("BTCUSDT-1m-2024-12.csv", binance_rows(false).as_bytes()).unwrap();
        assert_eq!(f, KlineFormat::Binance { header: false });
        check_three(&ms);
        let (us, _) = parse_csv("BTCUSDT-1m-2025-01.csv", binance_rows(true).as_bytes()).unwrap();
        check_three(&us);
        assert_eq!(ms, us);
    }

    #[test]
    fn binance_with_header_and_crlf_and_bom() {
        let text = format!("{BINANCE_HEADER}{}", binance_rows(false)).replace('\n', "\r\n");
        let (bars, f) = parse_csv("x.csv", text.as_bytes()).unwrap();
        assert_eq!(f, KlineFormat::Binance { header: true });
        check_three(&bars);
        let bom = format!("\u{feff}{BINANCE_HEADER}{}\n\n", binance_rows(true));
        check_three(&parse_klines("x.csv", bom.as_bytes()).unwrap());
    }

    fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in files {
            w.start_file(*name, opts).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn binance_zip() {
        let csv = binance_rows(true);
        let zipped = zip_of(&[("BTCUSDT-1m-2025-01.csv", csv.as_bytes())]);
        assert!(is_zip(&zipped));
        check_three(&parse_klines("BTCUSDT-1m-2025-01.zip", &zipped).unwrap());

        // One CSV among other files is fine; two CSVs are ambiguous.
        let zipped = zip_of(&[("README.txt", b"hi"), ("a.csv", csv.as_bytes())]);
        check_three(&parse_klines("a.zip", &zipped).unwrap());
        let zipped = zip_of(&[("a.csv", csv.as_bytes()), ("b.csv", csv.as_bytes())]);
        let err = parse_klines("two.zip", &zipped).unwrap_err();
        assert!(err.to_string().contains("expected exactly one CSV"), "{err}");

        // Errors inside the zip name the inner file.
        let bad = csv.replacen("93576.00000000", "abc", 1);
        let zipped = zip_of(&[("BTCUSDT-1m-2025-01.csv", bad.as_bytes())]);
        let err = parse_klines("BTCUSDT-1m-2025-01.zip", &zipped).unwrap_err();
        assert_eq!(
            err.to_string(),
            "BTCUSDT-1m-2025-01.zip/BTCUSDT-1m-2025-01.csv line 1: open \"abc\" is not a number"
        );

        let err = parse_klines("broken.zip", b"PK\x03\x04garbage").unwrap_err();
        assert!(matches!(err, CsvError::Zip { .. }), "{err}");
    }

    #[test]
    fn plain_ms_and_iso() {
        let ms = format!(
            "open_time,open,high,low,close,volume\n{},1.5,2,1,1.75,10\n{},1.75,1.8,1.7,1.7,0\n",
            T0,
            T0 + 3_600_000
        );
        let (a, f) = parse_csv("p.csv", ms.as_bytes()).unwrap();
        assert_eq!(f, KlineFormat::Plain);
        let iso = "Timestamp, Open, High, Low, Close, Volume\n\
                   2025-01-01T00:00:00Z,1.5,2,1,1.75,10\n\
                   2025-01-01T01:00:00.000Z,1.75,1.8,1.7,1.7,0\n";
        let b = parse_klines("p.csv", iso.as_bytes()).unwrap();
        assert_eq!(a, b);
        assert_eq!(b.open_time, [ymd_ms(2025, 1, 1), ymd_ms(2025, 1, 1) + 3_600_000]);
        assert_eq!(b.close, [1.75, 1.7]);
        // Times as the API contract writes them, and nothing else: an offset is refused.
        let offset = "open_time,open,high,low,close,volume\n2025-01-01T02:00:00+01:00,1.75,1.8,1.7,1.7,0\n";
        let err = parse_klines("p.csv", offset.as_bytes()).unwrap_err();
        assert!(matches!(err, CsvError::Row { line: 2, reason: RowError::BadTime { .. }, .. }), "{err}");
    }

    fn row_error(text: &str) -> (u64, RowError, String) {
        let err = parse_klines("f.csv", text.as_bytes()).unwrap_err();
        let msg = err.to_string();
        match err {
            CsvError::Row { line, reason, file } => {
                assert_eq!(file, "f.csv");
                (line, reason, msg)
            }
            other => panic!("expected a row error, got {other}"),
        }
    }

    #[test]
    fn malformed_rows_name_line_and_reason() {
        let h = "open_time,open,high,low,close,volume\n";
        let ok1 = format!("{T0},10,11,9,10.5,1\n");
        let t1 = T0 + 60_000;

        let (line, r, msg) = row_error(&format!("{h}{ok1}{t1},10,11,9,x,1\n"));
        assert_eq!((line, r), (3, RowError::NotNumeric { column: "close", value: "x".into() }));
        assert_eq!(msg, "f.csv line 3: close \"x\" is not a number");

        let (line, r, _) = row_error(&format!("{h}{ok1}{t1},10,11,9\n"));
        assert_eq!((line, r), (3, RowError::ColumnCount { expected: 6, found: 4 }));

        let (line, r, msg) = row_error(&format!("{h}{ok1}{t1},10,9,11,10,1\n"));
        assert_eq!((line, r), (3, RowError::HighBelowLow { high: 9.0, low: 11.0 }));
        assert_eq!(msg, "f.csv line 3: high 9 is below low 11");

        let (line, r, _) = row_error(&format!("{h}{ok1}{t1},0,11,9,10,1\n"));
        assert_eq!((line, r), (3, RowError::NonPositivePrice { column: "open", value: 0.0 }));

        let (line, r, _) = row_error(&format!("{h}{ok1}{t1},10,11,-9,10,1\n"));
        assert_eq!((line, r), (3, RowError::NonPositivePrice { column: "low", value: -9.0 }));

        let (line, r, _) = row_error(&format!("{h}{ok1}{t1},12,11,9,10,1\n"));
        assert!(matches!(r, RowError::OutsideRange { .. }) && line == 3);

        let (line, r, _) = row_error(&format!("{h}{ok1}{t1},10,11,9,10,-1\n"));
        assert_eq!((line, r), (3, RowError::NegativeVolume { value: -1.0 }));

        let (line, r, _) = row_error(&format!("{h}{ok1}{t1},10,11,9,NaN,1\n"));
        assert_eq!((line, r), (3, RowError::NotFinite { column: "close", value: "NaN".into() }));

        let (line, r, msg) = row_error(&format!("{h}{ok1}{ok1}"));
        assert_eq!((line, r), (3, RowError::Duplicate { time: T0 }));
        assert_eq!(
            msg,
            "f.csv line 3: duplicate open_time 2025-01-01T00:00:00Z (1735689600000) (same as the previous row)"
        );

        let (line, r, _) = row_error(&format!("{h}{t1},10,11,9,10,1\n\n{ok1}"));
        assert_eq!((line, r), (4, RowError::Unsorted { time: T0, previous: t1 }), "blank lines still count");

        let (line, r, _) = row_error(&format!("{h}{ok1}2025-01-01 00:01:00,10,11,9,10,1\n"));
        assert_eq!((line, r), (3, RowError::BadTime { value: "2025-01-01 00:01:00".into() }));

        let (line, r, _) = row_error(&format!("{h}1735689600,10,11,9,10,1\n"));
        assert_eq!((line, r), (2, RowError::TimeOutOfRange { value: 1_735_689_600 }));
    }

    #[test]
    fn binance_row_errors() {
        let rows = binance_rows(false);
        let mut lines: Vec<&str> = rows.lines().collect();
        // A microsecond row in a millisecond file.
        let us_row = binance_rows(true).lines().nth(2).unwrap().to_string();
        lines[2] = &us_row;
        let (line, r, _) = row_error(&lines.join("\n"));
        assert_eq!(line, 3);
        assert!(matches!(r, RowError::MixedTimeUnit { found: TimeUnit::Micros, file: TimeUnit::Millis, .. }));

        // 11 columns.
        let short = rows.lines().nth(1).unwrap().rsplit_once(',').unwrap().0.to_string();
        let text = format!("{}\n{short}\n", rows.lines().next().unwrap());
        let (line, r, _) = row_error(&text);
        assert_eq!((line, r), (2, RowError::ColumnCount { expected: 12, found: 11 }));

        // Microseconds that are not whole milliseconds.
        let text = binance_rows(true).replacen("000000,", "000123,", 1);
        let (line, r, _) = row_error(&text);
        assert_eq!((line, r), (1, RowError::SubMillisecond { value: T0 * 1000 + 123 }));
    }

    #[test]
    fn file_level_errors() {
        let err = |t: &str| parse_klines("f.csv", t.as_bytes()).unwrap_err().to_string();
        assert_eq!(err(""), "f.csv: no rows");
        assert_eq!(err("open_time,open,high,low,close,volume\n"), "f.csv: no data rows");
        assert!(err(&format!("{T0},1,1,1,1,1\n")).contains("needs the header row"));
        assert!(err("a,b,c\n1,2,3\n").contains("unrecognised header with 3 columns"));
        assert!(err("open_time,open,high,low,close,vol\n").contains("unrecognised header"));
        assert!(err(&format!("{T0},1,1,1\n")).contains("4 columns"));
        let e = read_klines("/nonexistent/x.csv").unwrap_err();
        assert!(matches!(e, CsvError::Io { .. }));
    }

    #[test]
    fn reads_from_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("BTCUSDT-1m-2025-01.zip");
        std::fs::write(&p, zip_of(&[("BTCUSDT-1m-2025-01.csv", binance_rows(true).as_bytes())])).unwrap();
        check_three(&read_klines(&p).unwrap());
    }

    #[test]
    fn a_mapped_file_reads_the_same_after_its_pages_are_given_back() {
        use crate::generate::{Preset, PRESET_ANCHOR_MS};
        let bars = Preset::btcusdt().generate(PRESET_ANCHOR_MS, PRESET_ANCHOR_MS + 40_000 * 60_000);
        let text = write_plain(&bars);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.csv");
        std::fs::write(&p, &text).unwrap();
        assert_eq!(read_klines(&p).unwrap(), bars);
        let file = FileBytes::read(&p).unwrap();
        assert!(matches!(file, FileBytes::Mapped(_)));
        file.release(&file);
        file.release(&file[1..4097]);
        file.release(text.as_bytes());
        assert_eq!(&file[..], text.as_bytes());
        assert_eq!(parse_file("big.csv", &file).unwrap(), bars);
    }

    #[test]
    fn integer_parser() {
        assert_eq!(parse_i64(b"1735689600000"), Some(T0));
        assert_eq!(parse_i64(b"-5"), Some(-5));
        assert_eq!(parse_i64(b""), None);
        assert_eq!(parse_i64(b"-"), None);
        assert_eq!(parse_i64(b"12.0"), None);
        assert_eq!(parse_i64(b"1234567890123456789"), None);
    }
}
