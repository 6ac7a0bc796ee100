//! [`Bars`] to Parquet bytes and back, losslessly (bit-identical `f64`s).
//!
//! # File schema (layout `v1`, see [`crate::layout`])
//!
//! | column | Parquet type | read by Arrow/DuckDB/polars as |
//! | --- | --- | --- |
//! | `open_time` | required INT64, TIMESTAMP(MILLIS, isAdjustedToUTC) | `timestamp[ms, tz=UTC]` |
//! | `open`, `high`, `low`, `close`, `volume` | required DOUBLE | `float64` |
//!
//! Rows are sorted by `open_time` (declared as the row groups' sorting column); one row group per
//! 1,048,576 rows, so a month of 1m bars (at most 44,640) is one row group, in pages of at most
//! 20,000 rows (Parquet's default; one page per column would save 0.5%). `open_time` is
//! DELTA_BINARY_PACKED (a regular minute grid packs to almost nothing), the doubles PLAIN without
//! dictionary, column-chunk statistics of `open_time` only (its min/max let a reader skip files),
//! pages **uncompressed** since issue 14 (before: ZSTD level 1, and level 3 before that). All of
//! these are the [`WriteOptions::default`]; the other options exist so the choice can be
//! re-measured (`cargo run --release -p pipai-market-data --example measure`). Every Parquet
//! reader reads these files (pyarrow/pandas, polars, DuckDB, Spark); a month written here was read
//! bit-identically by pandas 3.1 (pyarrow 26), polars 2.1 and DuckDB 2.0, with `open_time` as a
//! UTC millisecond timestamp. The reader here also reads ZSTD (the files written before issue 14,
//! polars' default) and Snappy (pandas' default) pages, so older files and bars written by those
//! tools load too.
//!
//! Why uncompressed (issue 14: `pipai run` on a year's Parquet and `pipai data ingest` bound by
//! the engine and the parser, not by the codec). CPU time on one core for one year of 1m bars as
//! 12 month files (the encoder's and the reader's own work, the 2-core machine at a load of 15,
//! so thread CPU time rather than wall time):
//!
//! | pages | year | encode | decode |
//! | --- | --- | --- | --- |
//! | **none, PLAIN** (the default) | 21.1 MB | 15 ms | 14 ms (with the PLAIN fast path below: see `docs/market-data.md`) |
//! | Snappy, PLAIN | 14.6 MB | 31 ms | 26 ms |
//! | ZSTD 1, PLAIN (the default before) | 10.3 MB | 59 ms | 28 ms |
//! | ZSTD -7 (fast), BYTE_STREAM_SPLIT | 16.5 MB | 15 ms | 21 ms |
//!
//! The cost is bytes: a 1m month is ~1.76 MB instead of ~0.86 MB, 5 years 105 MB instead of 52.
//! Against the local emulator that changes nothing (moto spends ~2.5 ms of CPU per GET whatever
//! the size); on AWS a 5-year load downloads twice the bytes, which the loader's 16 parallel GETs
//! overlap with decoding that is now almost free. To go back, set [`DEFAULT_COMPRESSION`]: old
//! and new files coexist in the bucket, the codec is per page.
//!
//! # The measurements before issue 14
//!
//! Measured with `cargo run --release -p pipai-market-data --example measure` on 60 monthly
//! files = 5 years of the BTCUSDT preset's 1m bars (prices in cents around 42,000-100,000,
//! volumes with decimals, like an exchange's), on the 2-core development machine: size, writing
//! all 60 files, decoding all 60 into one `Bars` on one core.
//!
//! | compression, doubles (time DELTA) | size per 1m month | 5 years | write 5 years | decode 5 years |
//! | --- | --- | --- | --- | --- |
//! | none, PLAIN | 1,757 KB | 105 MB | 117 ms | 43 ms |
//! | Snappy, PLAIN (the first default) | 1,207 KB | 72 MB | 247 ms | 101 ms |
//! | Snappy, BYTE_STREAM_SPLIT | 1,427 KB | 86 MB | 164 ms | 92 ms |
//! | Snappy, dictionary | 1,591 KB | 95 MB | 494 ms | 119 ms |
//! | LZ4_RAW, PLAIN (feature `lz4`, not enabled) | 1,172 KB | 70 MB | 240 ms | ~80 ms |
//! | ZSTD 1, PLAIN | 859 KB | 52 MB | 455 ms | 147 ms |
//! | ZSTD 3, PLAIN (the default until issue 14's level 1) | 823 KB | 49 MB | 631 ms | 149 ms |
//! | ZSTD 3, BYTE_STREAM_SPLIT | 1,193 KB | 72 MB | 382 ms | 181 ms |
//! | ZSTD 9, PLAIN | 759 KB | 46 MB | 2,962 ms | 141 ms |
//!
//! `open_time` as DELTA_BINARY_PACKED is under 1 KB a month (PLAIN: 350 KB). ZSTD 3 makes a
//! month 32% smaller than Snappy; level 9 gains 8% more for 5x the write time.
//! BYTE_STREAM_SPLIT, usually the float encoding of choice, loses here: a price in cents is
//! `N + c/100`, so the low mantissa bytes of prices in one binade repeat with the cents, which
//! the compressor finds in PLAIN 8-byte values and cannot find once the bytes are split into
//! streams. Dictionary encoding is off: prices barely repeat exactly within a month, and
//! `open_time` never does. Pages of 20,000 rows (Parquet's default) against one page per
//! column: 0.5% larger, same decode time.
//!
//! What the choice costs and buys:
//! - Decoding ZSTD takes ~50% more CPU than Snappy (~0.85 GB/s of bars per core against
//!   ~1.25); the loader overlaps it with the downloads on several threads.
//! - Against the local emulator (moto) the codec hardly matters: loading 5 years takes the same
//!   ~210-240 ms with any of them, because moto spends ~2.5 ms of its one Python core per GET
//!   whatever the size (~0.3 ms per MB on top), so 60 GETs cost ~170 ms of moto CPU.
//! - On AWS the bytes should matter more: the worker function has one vCPU and its S3 downloads
//!   run at tens to a few hundred MB/s (not measured here), so 23 MB less per 5-year window
//!   (~0.1 s at 200 MB/s) outweighs ~50 ms more decode that overlaps the downloads anyway.
//! - The `zstd` feature of `parquet` links the zstd C library: +0.68 MB on a stripped binary
//!   (`lz4` would be +0.03 MB, `snap` is pure Rust and small).
//!
//! # Reading
//!
//! [`bars_from_parquet`] / [`append_bars_from_parquet`] find the six columns by name (extra
//! columns are ignored, order does not matter), accept `open_time` as a millisecond timestamp or a
//! plain INT64, refuse other types and nulls, and decode the pages with Parquet's column readers
//! straight into the `Bars` vectors (no Arrow arrays, one copy). [`BarsFile`] does the same
//! for a range of rows, column by column (the loader decodes only the window's rows of the
//! months at its ends). None of them re-runs [`Bars::validate`] (the writer refuses invalid
//! bars; validating 2.6 M bars costs ~17 ms); call it after concatenating partitions if their
//! order is not otherwise guaranteed.
//!
//! [`bars_from_parquet_files`] allocates the output once ([`crate::layout::bars_with_capacity`]): from 65,536 rows it asks for it to be
//! backed by transparent huge pages (half the page faults of decoding a year: see
//! `docs/market-data.md`). The ingest writes its partitions with [`valid_columns_to_parquet`]
//! (the same bytes as [`bars_to_parquet`], from borrowed columns, without validating again).
//!
//! The crate does not use Arrow at all: writer and reader are Parquet's own low-level API, which
//! keeps what a reading binary links small.

use std::ops::Range;
use std::sync::Arc;

use ::parquet::basic::{Encoding, LogicalType, Type as PhysicalType, ZstdLevel};
use ::parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use ::parquet::data_type::{DoubleType, Int64Type};
use ::parquet::file::metadata::SortingColumn;
use ::parquet::file::properties::{EnabledStatistics, WriterProperties};
use ::parquet::file::reader::{FileReader, SerializedFileReader};
use ::parquet::file::writer::SerializedFileWriter;
use ::parquet::schema::parser::parse_message_type;
use ::parquet::schema::types::{ColumnPath, Type as SchemaType};
use bytes::Bytes;
use pipai_engine::bars::{Bars, BarsError};

use crate::columns::BarColumns;

/// Column names, in file order.
pub const COLUMNS: [&str; 6] = ["open_time", "open", "high", "low", "close", "volume"];
const FLOAT_COLUMNS: [&str; 5] = ["open", "high", "low", "close", "volume"];

/// Rows per data page (Parquet's default).
const PAGE_ROWS: usize = 20_000;

/// Rows per row group at most.
pub const MAX_ROW_GROUP_ROWS: usize = 1 << 20;

/// Page compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Snappy,
    /// ZSTD at `level` (1..=22, 3 is zstd's own default; negative levels are its fast modes).
    Zstd {
        level: i32,
    },
}

/// The store's compression: none (see the module doc; ZSTD level 1 until issue 14).
pub const DEFAULT_COMPRESSION: Compression = Compression::None;

/// Encoding of the five `f64` columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatEncoding {
    Plain,
    /// Bytes of each value split into 8 streams: the usual float encoding, but it loses on
    /// prices in cents (see the module doc).
    ByteStreamSplit,
    /// Dictionary (falls back to plain when the dictionary grows too large).
    Dictionary,
}

/// How to write; `Default` is what the store uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    pub compression: Compression,
    pub float_encoding: FloatEncoding,
    /// DELTA_BINARY_PACKED for `open_time` (else PLAIN).
    pub delta_time: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions { compression: DEFAULT_COMPRESSION, float_encoding: FloatEncoding::Plain, delta_time: true }
    }
}

/// Why bars could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ParquetBarsError {
    #[error("parquet: {0}")]
    Parquet(#[from] ::parquet::errors::ParquetError),
    #[error("column {0} is missing")]
    MissingColumn(&'static str),
    #[error("column {name} has type {found}, expected {expected}")]
    WrongType { name: &'static str, found: String, expected: &'static str },
    #[error("column {0} has nulls")]
    Nulls(&'static str),
    #[error("invalid bars: {0}")]
    Invalid(#[from] BarsError),
}

/// The Parquet schema of a bars file, as Parquet's message-type text.
pub const SCHEMA: &str = "message bars {
  required int64 open_time (TIMESTAMP(MILLIS,true));
  required double open;
  required double high;
  required double low;
  required double close;
  required double volume;
}";

/// The [`SCHEMA`] as a Parquet type.
pub fn schema() -> Arc<SchemaType> {
    Arc::new(parse_message_type(SCHEMA).expect("the bars schema parses"))
}

/// Writes valid bars (checked with [`Bars::validate`]) as a Parquet file, default options.
pub fn bars_to_parquet(bars: &Bars) -> Result<Vec<u8>, ParquetBarsError> {
    bars_to_parquet_with(bars, WriteOptions::default())
}

/// [`bars_to_parquet`] with explicit options.
pub fn bars_to_parquet_with(bars: &Bars, opts: WriteOptions) -> Result<Vec<u8>, ParquetBarsError> {
    bars.validate()?;
    let props = if opts == WriteOptions::default() { DEFAULT_PROPERTIES.clone() } else { properties(opts)? };
    write_columns(BarColumns::of(bars), props)
}

/// Writes bars known to be valid (the ingest's: parsed strictly, or aggregated from such bars)
/// with the default options, from borrowed columns: what [`bars_to_parquet`] writes, without
/// validating them again or copying them out of a longer series first.
pub fn valid_columns_to_parquet(bars: BarColumns<'_>) -> Result<Vec<u8>, ParquetBarsError> {
    debug_assert!(bars.to_bars().validate().is_ok());
    write_columns(bars, DEFAULT_PROPERTIES.clone())
}

/// The writer's properties for the default options, built once: every file of an ingest (72 for
/// a year of 1m with its derived timeframes) shares them and the schema.
static DEFAULT_PROPERTIES: std::sync::LazyLock<Arc<WriterProperties>> =
    std::sync::LazyLock::new(|| properties(WriteOptions::default()).expect("the default options are valid"));

/// The [`SCHEMA`], parsed once.
static SCHEMA_TYPE: std::sync::LazyLock<Arc<SchemaType>> = std::sync::LazyLock::new(schema);

/// The writer's properties for `opts`.
fn properties(opts: WriteOptions) -> Result<Arc<WriterProperties>, ParquetBarsError> {
    let compression = match opts.compression {
        Compression::None => ::parquet::basic::Compression::UNCOMPRESSED,
        Compression::Snappy => ::parquet::basic::Compression::SNAPPY,
        Compression::Zstd { level } => ::parquet::basic::Compression::ZSTD(ZstdLevel::try_new(level)?),
    };
    let mut props = WriterProperties::builder()
        .set_created_by(format!("pipai-market-data {}", env!("CARGO_PKG_VERSION")))
        .set_compression(compression)
        .set_max_row_group_row_count(Some(MAX_ROW_GROUP_ROWS))
        // Min/max of open_time only: what lets a reader skip a file (prices' are never used).
        .set_statistics_enabled(EnabledStatistics::None)
        .set_column_statistics_enabled(ColumnPath::from("open_time"), EnabledStatistics::Chunk)
        // Values handed to the encoders a page (20,000 rows) at a time, not 1,024.
        .set_write_batch_size(PAGE_ROWS)
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_sorting_columns(Some(vec![SortingColumn { column_idx: 0, descending: false, nulls_first: false }]))
        .set_dictionary_enabled(opts.float_encoding == FloatEncoding::Dictionary)
        .set_column_dictionary_enabled(ColumnPath::from("open_time"), false);
    if opts.delta_time {
        props = props.set_column_encoding(ColumnPath::from("open_time"), Encoding::DELTA_BINARY_PACKED);
    }
    if opts.float_encoding == FloatEncoding::ByteStreamSplit {
        for name in FLOAT_COLUMNS {
            props = props.set_column_encoding(ColumnPath::from(name), Encoding::BYTE_STREAM_SPLIT);
        }
    }
    Ok(Arc::new(props.build()))
}

/// Bytes of a file of `rows` rows, plus room: the output is allocated once (uncompressed PLAIN
/// doubles are 40 bytes a row, `open_time` at most 8 more).
fn file_capacity(rows: usize) -> usize {
    rows * 48 + (16 << 10)
}

fn write_columns(bars: BarColumns<'_>, props: Arc<WriterProperties>) -> Result<Vec<u8>, ParquetBarsError> {
    let mut out = Vec::with_capacity(file_capacity(bars.len()));
    let mut writer = SerializedFileWriter::new(&mut out, SCHEMA_TYPE.clone(), props)?;
    let n = bars.len();
    let floats = bars.floats();
    let mut start = 0;
    while start < n {
        let end = (start + MAX_ROW_GROUP_ROWS).min(n);
        let mut group = writer.next_row_group()?;
        let mut k = 0;
        while let Some(mut col) = group.next_column()? {
            if k == 0 {
                col.typed::<Int64Type>().write_batch(&bars.open_time[start..end], None, None)?;
            } else {
                col.typed::<DoubleType>().write_batch(&floats[k - 1][start..end], None, None)?;
            }
            col.close()?;
            k += 1;
        }
        group.close()?;
        start = end;
    }
    writer.close()?;
    Ok(out)
}

/// Reads a bars file (see the module doc). A large file's six columns are decoded at once, on
/// every core.
pub fn bars_from_parquet(bytes: impl Into<Bytes>) -> Result<Bars, ParquetBarsError> {
    bars_from_parquet_files(vec![bytes.into()]).map(|(bars, _)| bars).map_err(|(_, e)| e)
}

/// Reads several bars files (say a series' month partitions, in order) into one [`Bars`], the
/// rows of each file after those of the one before, allocated once. From 65,536 rows in all, the
/// six columns are decoded on every core, a thread taking the next column not yet taken and
/// going through every file (`csv::on_each`).
/// Like [`bars_from_parquet`], checks neither the order within nor across files: the caller
/// does. Returns the bars and the rows of each file; an error comes with the index of the file
/// it is about.
pub fn bars_from_parquet_files(files: Vec<Bytes>) -> Result<(Bars, Vec<usize>), (usize, ParquetBarsError)> {
    bars_from_parquet_files_releasing(files, &|_, _| {})
}

/// [`bars_from_parquet_files`], calling `release(i, part)` with the bytes of each column of file
/// `i` once they are decoded (for a mapped file to give its pages back, as the CSV parser does:
/// the bars are then never held beside the whole file). `part` may be read again afterwards.
pub fn bars_from_parquet_files_releasing(
    files: Vec<Bytes>,
    release: &(dyn Fn(usize, &[u8]) + Sync),
) -> Result<(Bars, Vec<usize>), (usize, ParquetBarsError)> {
    let files = files
        .into_iter()
        .enumerate()
        .map(|(i, bytes)| BarsFile::open(bytes).map_err(|e| (i, e)))
        .collect::<Result<Vec<_>, _>>()?;
    let rows: Vec<usize> = files.iter().map(BarsFile::rows).collect();
    let total = rows.iter().sum();
    let mut out = crate::layout::bars_with_capacity(total);
    if total < PARALLEL_DECODE_ROWS {
        for (i, file) in files.iter().enumerate() {
            file.append_to(&mut out).map_err(|e| (i, e))?;
            (0..COLUMNS.len()).flat_map(|k| file.column_bytes(k)).for_each(|part| release(i, part));
        }
        return Ok((out, rows));
    }
    let Bars { open_time, open, high, low, close, volume } = &mut out;
    let mut columns = vec![Destination::Time(open_time)];
    columns.extend(
        FloatColumn::ALL.into_iter().zip([open, high, low, close, volume]).map(|(c, v)| Destination::Float(c, v)),
    );
    let decoded = crate::csv::on_each(columns, |mut column| {
        for (i, file) in files.iter().enumerate() {
            let rows = 0..file.rows();
            let k = match &mut column {
                Destination::Time(dst) => file.read_open_time(rows, dst).map(|()| 0),
                Destination::Float(c, dst) => file.read_floats(*c, rows, dst).map(|()| c.index()),
            }
            .map_err(|e| (i, e))?;
            file.column_bytes(k).for_each(|part| release(i, part));
        }
        Ok(())
    });
    decoded.into_iter().collect::<Result<(), _>>()?;
    Ok((out, rows))
}

/// Files with fewer rows than this are decoded on the calling thread (threads would cost more).
const PARALLEL_DECODE_ROWS: usize = 1 << 16;

/// Where one column of a file is decoded to.
enum Destination<'a> {
    Time(&'a mut Vec<i64>),
    Float(FloatColumn, &'a mut Vec<f64>),
}

/// Reads a bars file and appends its rows to `out` (for concatenating monthly partitions without
/// an intermediate copy). Returns the number of rows appended.
///
/// Uses Parquet's column readers directly (no Arrow arrays): pages are decoded straight into the
/// `Bars` vectors, one copy.
pub fn append_bars_from_parquet(bytes: impl Into<Bytes>, out: &mut Bars) -> Result<usize, ParquetBarsError> {
    BarsFile::open(bytes)?.append_to(out)
}

/// The five `f64` columns of a bars file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatColumn {
    Open,
    High,
    Low,
    Close,
    Volume,
}

impl FloatColumn {
    pub const ALL: [FloatColumn; 5] =
        [FloatColumn::Open, FloatColumn::High, FloatColumn::Low, FloatColumn::Close, FloatColumn::Volume];

    /// Its index in [`COLUMNS`].
    fn index(self) -> usize {
        self as usize + 1
    }
}

/// A bars file opened for reading rows column by column: the schema is checked once, on
/// opening, and each column can then be read on its own (several threads can decode different
/// columns of one file, straight into their own output vectors).
pub struct BarsFile {
    reader: SerializedFileReader<Bytes>,
    /// The file's bytes (shared with the reader).
    bytes: Bytes,
    /// Leaf index of each of [`COLUMNS`] in the file.
    idx: [usize; 6],
    /// Whether each of [`COLUMNS`] is `required` (no definition levels in its pages).
    required: [bool; 6],
    rows: usize,
}

impl BarsFile {
    /// Opens a bars file (see the module doc for what it accepts).
    pub fn open(bytes: impl Into<Bytes>) -> Result<BarsFile, ParquetBarsError> {
        let bytes = bytes.into();
        let reader = SerializedFileReader::new(bytes.clone())?;
        let meta = reader.metadata();
        let schema = meta.file_metadata().schema_descr();
        let mut idx = [0usize; 6];
        let mut required = [false; 6];
        for (k, name) in COLUMNS.into_iter().enumerate() {
            let i = schema
                .columns()
                .iter()
                .position(|c| c.path().parts() == [name])
                .ok_or(ParquetBarsError::MissingColumn(name))?;
            let c = schema.column(i);
            let (want, ok_logical) = if k == 0 {
                let ok = match c.logical_type_ref() {
                    None | Some(LogicalType::Integer { .. }) => true,
                    Some(LogicalType::Timestamp(t)) => t.unit == ::parquet::basic::TimeUnit::MILLIS,
                    _ => false,
                };
                (PhysicalType::INT64, ok)
            } else {
                (PhysicalType::DOUBLE, c.logical_type_ref().is_none())
            };
            if c.physical_type() != want || !ok_logical || c.max_rep_level() != 0 {
                return Err(ParquetBarsError::WrongType {
                    name,
                    found: format!("{:?} {:?}", c.physical_type(), c.logical_type_ref()),
                    expected: if k == 0 { "INT64 TIMESTAMP(MILLIS) or INT64" } else { "DOUBLE" },
                });
            }
            idx[k] = i;
            required[k] = c.max_def_level() == 0;
        }
        let rows = meta.file_metadata().num_rows().max(0) as usize;
        Ok(BarsFile { reader, bytes, idx, required, rows })
    }

    /// Rows in the file.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The bytes of column `k` of [`COLUMNS`] in the file, one stretch per row group.
    fn column_bytes(&self, k: usize) -> impl Iterator<Item = &[u8]> + '_ {
        self.reader.metadata().row_groups().iter().filter_map(move |group| {
            let (start, len) = group.column(self.idx[k]).byte_range();
            let (start, len) = (usize::try_from(start).ok()?, usize::try_from(len).ok()?);
            self.bytes.get(start..start.checked_add(len)?)
        })
    }

    /// Appends every row to `out`, one column after another. Returns the number of rows.
    pub fn append_to(&self, out: &mut Bars) -> Result<usize, ParquetBarsError> {
        let rows = 0..self.rows;
        self.read_open_time(rows.clone(), &mut out.open_time)?;
        for (column, dst) in FloatColumn::ALL.into_iter().zip([
            &mut out.open,
            &mut out.high,
            &mut out.low,
            &mut out.close,
            &mut out.volume,
        ]) {
            self.read_floats(column, rows.clone(), dst)?;
        }
        Ok(rows.len())
    }

    /// Appends the `open_time` of rows `rows` (of the whole file, across row groups) to `dst`.
    pub fn read_open_time(&self, rows: Range<usize>, dst: &mut Vec<i64>) -> Result<(), ParquetBarsError> {
        self.read_rows(0, rows, dst, i64::from_le_bytes, |r| match r {
            ColumnReader::Int64ColumnReader(r) => Some(r),
            _ => None,
        })
    }

    /// Appends `column` of rows `rows` to `dst`.
    pub fn read_floats(
        &self,
        column: FloatColumn,
        rows: Range<usize>,
        dst: &mut Vec<f64>,
    ) -> Result<(), ParquetBarsError> {
        self.read_rows(column.index(), rows, dst, f64::from_le_bytes, |r| match r {
            ColumnReader::DoubleColumnReader(r) => Some(r),
            _ => None,
        })
    }

    fn read_rows<T: ::parquet::data_type::DataType>(
        &self,
        k: usize,
        rows: Range<usize>,
        dst: &mut Vec<T::T>,
        from_le: fn([u8; 8]) -> T::T,
        typed: fn(ColumnReader) -> Option<ColumnReaderImpl<T>>,
    ) -> Result<(), ParquetBarsError> {
        let name = COLUMNS[k];
        if rows.end > self.rows {
            return Err(ParquetBarsError::Parquet(::parquet::errors::ParquetError::General(format!(
                "column {name}: rows {rows:?} asked of a file of {} rows",
                self.rows
            ))));
        }
        dst.reserve(rows.len());
        let mut defs: Vec<i16> = Vec::new();
        let mut group_start = 0;
        for rg in 0..self.reader.num_row_groups() {
            if group_start >= rows.end {
                break;
            }
            let group = self.reader.get_row_group(rg)?;
            let group_end = group_start + group.metadata().num_rows().max(0) as usize;
            let (from, to) = (rows.start.max(group_start), rows.end.min(group_end));
            let whole = (from, to) == (group_start, group_end);
            if from < to
                && whole
                && self.required[k]
                && read_plain_pages(&*group, name, self.idx[k], to - from, dst, from_le)?
            {
                // Done without a decoder.
            } else if from < to {
                // The schema was checked on opening, so the reader has the type asked for.
                let mut r = typed(group.get_column_reader(self.idx[k])?).ok_or(ParquetBarsError::WrongType {
                    name,
                    found: "another physical type".into(),
                    expected: if k == 0 { "INT64" } else { "DOUBLE" },
                })?;
                let skip = from - group_start;
                if skip > 0 && r.skip_records(skip)? != skip {
                    return Err(short_column(name, 0, skip));
                }
                read_all(&mut r, to - from, &mut defs, dst, name)?;
            }
            group_start = group_end;
        }
        Ok(())
    }
}

/// Appends the values of a required column chunk of `n` values when every data page of it is
/// PLAIN: a page's (decompressed) bytes are then the values themselves, copied as they are, with
/// no decoder between (the store's files: `open_time` aside, every column). Returns `false`, with
/// `dst` as it was, when a page is in another encoding: the caller then decodes the chunk.
fn read_plain_pages<T>(
    group: &dyn ::parquet::file::reader::RowGroupReader,
    name: &'static str,
    i: usize,
    n: usize,
    dst: &mut Vec<T>,
    from_le: fn([u8; 8]) -> T,
) -> Result<bool, ParquetBarsError> {
    use ::parquet::column::page::Page;
    debug_assert_eq!(std::mem::size_of::<T>(), 8);
    let before = dst.len();
    let mut pages = group.get_column_page_reader(i)?;
    while let Some(page) = pages.get_next_page()? {
        let values = match &page {
            Page::DataPage { buf, num_values, encoding: Encoding::PLAIN, .. } => Some((buf, *num_values)),
            Page::DataPageV2 {
                buf,
                num_values,
                encoding: Encoding::PLAIN,
                num_nulls: 0,
                def_levels_byte_len: 0,
                rep_levels_byte_len: 0,
                ..
            } => Some((buf, *num_values)),
            _ => None,
        };
        match values {
            Some((buf, count)) if buf.len() == count as usize * 8 => {
                dst.extend(buf.chunks_exact(8).map(|b| from_le(b.try_into().expect("8-byte chunks"))));
            }
            _ => {
                dst.truncate(before);
                return Ok(false);
            }
        }
    }
    if dst.len() - before != n {
        let done = dst.len() - before;
        dst.truncate(before);
        return Err(short_column(name, done, n));
    }
    Ok(true)
}

fn short_column(name: &'static str, done: usize, n: usize) -> ParquetBarsError {
    ParquetBarsError::Parquet(::parquet::errors::ParquetError::General(format!("column {name}: {done} of {n} rows")))
}

/// Reads `n` records of a flat column into `dst`; a null is an error.
fn read_all<T: ::parquet::data_type::DataType>(
    r: &mut ColumnReaderImpl<T>,
    n: usize,
    defs: &mut Vec<i16>,
    dst: &mut Vec<T::T>,
    name: &'static str,
) -> Result<(), ParquetBarsError> {
    let mut done = 0;
    while done < n {
        defs.clear();
        let (records, values, _) = r.read_records(n - done, Some(defs), None, dst)?;
        if values != records {
            return Err(ParquetBarsError::Nulls(name));
        }
        if records == 0 {
            return Err(short_column(name, done, n));
        }
        done += records;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{generate_1m, PRESET_ANCHOR_MS};

    fn bits(b: &Bars) -> Vec<u64> {
        [&b.open, &b.high, &b.low, &b.close, &b.volume].iter().flat_map(|c| c.iter().map(|x| x.to_bits())).collect()
    }

    #[test]
    fn a_large_file_decoded_on_every_core_reads_back_whole() {
        let bars = generate_1m(7, 42_000.0, PRESET_ANCHOR_MS, PRESET_ANCHOR_MS + 50 * 86_400_000);
        assert!(bars.len() >= PARALLEL_DECODE_ROWS);
        let bytes = bars_to_parquet(&bars).unwrap();
        let back = bars_from_parquet(bytes.clone()).unwrap();
        assert_eq!(back.open_time, bars.open_time);
        assert_eq!(bits(&back), bits(&bars));
        let mut appended = Bars::default();
        assert_eq!(append_bars_from_parquet(bytes, &mut appended).unwrap(), bars.len());
        assert_eq!(appended, back);
    }

    #[test]
    fn every_column_chunk_is_released_once_decoded() {
        for days in [1, 50] {
            let bars = generate_1m(3, 100.0, PRESET_ANCHOR_MS, PRESET_ANCHOR_MS + days * 86_400_000);
            let files: Vec<Bytes> = crate::layout::split_by_month(&bars)
                .iter()
                .map(|(_, part)| Bytes::from(bars_to_parquet(part).unwrap()))
                .collect();
            let released = std::sync::Mutex::new(vec![0usize; files.len()]);
            let (back, rows) = bars_from_parquet_files_releasing(files.clone(), &|i, part| {
                assert!(part.len() < files[i].len());
                released.lock().unwrap()[i] += part.len();
            })
            .unwrap();
            assert_eq!(back, bars);
            assert_eq!(rows.iter().sum::<usize>(), bars.len());
            // The six column chunks: all of a file but its header and footer.
            for (file, n) in files.iter().zip(released.into_inner().unwrap()) {
                assert!(n > file.len() * 9 / 10 && n < file.len(), "{n} of {}", file.len());
            }
        }
    }

    #[test]
    fn round_trip_every_option_is_lossless() {
        let bars = generate_1m(11, 42_000.0, PRESET_ANCHOR_MS, PRESET_ANCHOR_MS + 3 * 86_400_000);
        for compression in [Compression::None, Compression::Snappy, Compression::Zstd { level: 1 }] {
            for float_encoding in [FloatEncoding::Plain, FloatEncoding::ByteStreamSplit, FloatEncoding::Dictionary] {
                for delta_time in [false, true] {
                    let opts = WriteOptions { compression, float_encoding, delta_time };
                    let bytes = bars_to_parquet_with(&bars, opts).unwrap();
                    let back = bars_from_parquet(bytes).unwrap();
                    assert_eq!(back.open_time, bars.open_time, "{opts:?}");
                    assert_eq!(bits(&back), bits(&bars), "{opts:?}");
                }
            }
        }
    }

    #[test]
    fn odd_floats_survive() {
        // Values with long mantissas, subnormal-ish volumes and zero volume.
        let mut bars = Bars::default();
        for (i, p) in [0.1 + 0.2, 1e-300, 123_456.789_012_345_67, f64::MAX / 4.0].into_iter().enumerate() {
            bars.push(pipai_engine::bars::Bar {
                open_time: i as i64 * 60_000,
                open: p,
                high: p * 2.0,
                low: p / 2.0,
                close: p,
                volume: if i == 0 { 0.0 } else { 5e-324 },
            });
        }
        let back = bars_from_parquet(bars_to_parquet(&bars).unwrap()).unwrap();
        assert_eq!(bits(&back), bits(&bars));
        assert_eq!(back.open_time, bars.open_time);
    }

    #[test]
    fn empty_and_invalid() {
        let back = bars_from_parquet(bars_to_parquet(&Bars::default()).unwrap()).unwrap();
        assert!(back.is_empty());
        let mut bars = generate_1m(1, 100.0, 0, 180_000);
        bars.open_time.swap(0, 1);
        assert!(matches!(bars_to_parquet(&bars), Err(ParquetBarsError::Invalid(_))));
        assert!(matches!(bars_from_parquet(Bytes::from_static(b"not parquet")), Err(ParquetBarsError::Parquet(_))));
    }

    #[test]
    fn append_concatenates_months() {
        let bars = generate_1m(2, 2_300.0, PRESET_ANCHOR_MS + 20 * 86_400_000, PRESET_ANCHOR_MS + 40 * 86_400_000);
        let mut back = Bars::default();
        for (_, part) in crate::layout::split_by_month(&bars) {
            let n = append_bars_from_parquet(bars_to_parquet(&part).unwrap(), &mut back).unwrap();
            assert_eq!(n, part.len());
        }
        assert_eq!(back, bars);
    }

    /// Writes a file of an arbitrary schema: `columns` are int64 or double values per column.
    fn write_raw(message: &str, columns: &[Col]) -> Vec<u8> {
        let schema = Arc::new(parse_message_type(message).unwrap());
        let mut buf = Vec::new();
        let mut w = SerializedFileWriter::new(&mut buf, schema, Arc::new(WriterProperties::builder().build())).unwrap();
        let mut g = w.next_row_group().unwrap();
        let mut i = 0;
        while let Some(mut c) = g.next_column().unwrap() {
            match &columns[i] {
                Col::I(v) => c.typed::<Int64Type>().write_batch(v, None, None).unwrap(),
                Col::F(v) => c.typed::<DoubleType>().write_batch(v, None, None).unwrap(),
                Col::NullableF(v, defs) => c.typed::<DoubleType>().write_batch(v, Some(defs), None).unwrap(),
            };
            c.close().unwrap();
            i += 1;
        }
        g.close().unwrap();
        w.close().unwrap();
        buf
    }

    enum Col {
        I(Vec<i64>),
        F(Vec<f64>),
        NullableF(Vec<f64>, Vec<i16>),
    }

    #[test]
    fn reads_int64_times_and_extra_columns_in_any_order() {
        let bars = generate_1m(4, 100.0, 0, 600_000);
        let message = "message m { required double volume; required int64 trades; required int64 open_time;
            required double open; required double high; required double low; required double close; }";
        let buf = write_raw(
            message,
            &[
                Col::F(bars.volume.clone()),
                Col::I(vec![7; bars.len()]),
                Col::I(bars.open_time.clone()),
                Col::F(bars.open.clone()),
                Col::F(bars.high.clone()),
                Col::F(bars.low.clone()),
                Col::F(bars.close.clone()),
            ],
        );
        assert_eq!(bars_from_parquet(buf).unwrap(), bars);
    }

    #[test]
    fn wrong_types_missing_columns_and_nulls_are_refused() {
        let prices = |n| (0..5).map(|_| Col::F(vec![1.0; n])).collect::<Vec<_>>();
        let mut cols = vec![Col::I(vec![0, 60_000])];
        cols.extend(prices(2));
        let micros = "message m { required int64 open_time (TIMESTAMP(MICROS,true)); required double open;
            required double high; required double low; required double close; required double volume; }";
        let err = bars_from_parquet(write_raw(micros, &cols)).unwrap_err();
        assert!(matches!(err, ParquetBarsError::WrongType { name: "open_time", .. }), "{err}");

        let missing = "message m { required int64 open_time; required double open; }";
        let err = bars_from_parquet(write_raw(missing, &[Col::I(vec![0]), Col::F(vec![1.0])])).unwrap_err();
        assert!(matches!(err, ParquetBarsError::MissingColumn("high")), "{err}");

        let nullable = "message m { required int64 open_time; required double open; required double high;
            required double low; optional double close; required double volume; }";
        let mut cols = vec![Col::I(vec![0, 60_000])];
        cols.extend(prices(2));
        cols[4] = Col::NullableF(vec![1.0], vec![1, 0]);
        let err = bars_from_parquet(write_raw(nullable, &cols)).unwrap_err();
        assert!(matches!(err, ParquetBarsError::Nulls("close")), "{err}");
        // A nullable column without nulls is fine.
        cols[4] = Col::NullableF(vec![1.0, 1.0], vec![1, 1]);
        assert_eq!(bars_from_parquet(write_raw(nullable, &cols)).unwrap().close, [1.0, 1.0]);
    }

    #[test]
    fn many_row_groups() {
        // More than one row group: 1.5 x MAX_ROW_GROUP_ROWS would be slow in a debug test, so
        // check the reader on a file written with small row groups instead.
        let bars = generate_1m(8, 100.0, 0, 2_000 * 60_000);
        let props = WriterProperties::builder().set_max_row_group_row_count(Some(300)).build();
        let mut buf = Vec::new();
        let mut w = SerializedFileWriter::new(&mut buf, schema(), Arc::new(props)).unwrap();
        for chunk in (0..bars.len()).step_by(300) {
            let end = (chunk + 300).min(bars.len());
            let mut g = w.next_row_group().unwrap();
            let mut k = 0;
            while let Some(mut c) = g.next_column().unwrap() {
                if k == 0 {
                    c.typed::<Int64Type>().write_batch(&bars.open_time[chunk..end], None, None).unwrap();
                } else {
                    let v = [&bars.open, &bars.high, &bars.low, &bars.close, &bars.volume][k - 1];
                    c.typed::<DoubleType>().write_batch(&v[chunk..end], None, None).unwrap();
                }
                c.close().unwrap();
                k += 1;
            }
            g.close().unwrap();
        }
        let meta = w.close().unwrap();
        assert_eq!(meta.num_row_groups(), 7);
        let buf = Bytes::from(buf);
        assert_eq!(bars_from_parquet(buf.clone()).unwrap(), bars);

        // Windows of rows, column by column, within and across row groups.
        let file = BarsFile::open(buf).unwrap();
        assert_eq!(file.rows(), 2_000);
        for rows in [0..0, 0..1, 10..290, 250..950, 299..301, 1_800..2_000, 0..2_000] {
            let mut times = vec![-1];
            file.read_open_time(rows.clone(), &mut times).unwrap();
            assert_eq!(times[1..], bars.open_time[rows.clone()], "{rows:?}");
            for (column, expected) in
                FloatColumn::ALL.into_iter().zip([&bars.open, &bars.high, &bars.low, &bars.close, &bars.volume])
            {
                let mut got = Vec::new();
                file.read_floats(column, rows.clone(), &mut got).unwrap();
                assert_eq!(got, expected[rows.clone()], "{column:?} {rows:?}");
            }
        }
        assert!(file.read_open_time(1_999..2_001, &mut Vec::new()).is_err());
    }

    #[test]
    fn file_metadata() {
        let bars = generate_1m(9, 100.0, 0, 10 * 60_000);
        let bytes = Bytes::from(bars_to_parquet(&bars).unwrap());
        let reader = SerializedFileReader::new(bytes).unwrap();
        let meta = reader.metadata();
        assert_eq!(meta.num_row_groups(), 1);
        let rg = meta.row_group(0);
        assert_eq!(rg.sorting_columns().unwrap()[0].column_idx, 0);
        let time = rg.column(0);
        assert_eq!(time.compression(), ::parquet::basic::Compression::UNCOMPRESSED);
        for c in 1..6 {
            let encodings: Vec<Encoding> = rg.column(c).encodings().collect();
            assert!(encodings.contains(&Encoding::PLAIN), "{encodings:?}");
            assert!(!encodings.iter().any(|e| matches!(e, Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY)));
        }
        assert!(time.encodings().any(|e| e == Encoding::DELTA_BINARY_PACKED));
        let t = meta.file_metadata().schema_descr().column(0);
        assert_eq!(t.logical_type_ref(), Some(&LogicalType::timestamp(true, ::parquet::basic::TimeUnit::MILLIS)));
    }
}
