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
//! 1,048,576 rows, so a month of 1m bars (at most 44,640) is one row group. `open_time` is
//! DELTA_BINARY_PACKED (a regular minute grid packs to almost nothing), the doubles PLAIN without
//! dictionary, column-chunk statistics only (min/max of `open_time` let a reader skip files),
//! Snappy pages. All of these are the [`WriteOptions::default`]; the other options exist so the
//! choice can be re-measured (`cargo run --release -p pipai-market-data --example measure`).
//!
//! # Why these defaults (measured on 60 monthly files = 5 years of synthetic BTC-like 1m bars)
//!
//! | compression, doubles, time | size per 1m month | decode, ms per million rows |
//! | --- | --- | --- |
//! | none, PLAIN, PLAIN | 2.11 MB | 18 |
//! | none, PLAIN, DELTA | 1.76 MB | 18 |
//! | snappy, PLAIN, DELTA (**default**) | 1.21 MB | 44 |
//! | snappy, BYTE_STREAM_SPLIT, DELTA | 1.43 MB | 40 |
//! | snappy, dictionary, DELTA | 1.59 MB | 56 |
//!
//! Snappy makes the files 31% smaller than uncompressed for ~26 ms more decode per million rows
//! (single core). Five years of 1m bars are 72 MB instead of 105 MB: 33 MB less to fetch from
//! object storage is worth more than ~70 ms of decode that can overlap the downloads and run on
//! several cores. The numbers are for synthetic prices in cents; exchange data is similar
//! (prices in ticks, volumes with 5-8 decimals).
//!
//! # Reading
//!
//! [`bars_from_parquet`] / [`append_bars_from_parquet`] find the six columns by name (extra
//! columns are ignored, order does not matter), accept `open_time` as a millisecond timestamp or a
//! plain INT64, refuse other types and nulls, and decode the pages with Parquet's column readers
//! straight into the `Bars` vectors (no Arrow arrays, one copy). They do not re-run
//! [`Bars::validate`] (the writer refuses invalid bars; validating 2.6 M bars costs ~17 ms); call
//! it after concatenating partitions if their order is not otherwise guaranteed.
//!
//! The crate does not use Arrow at all: writer and reader are Parquet's own low-level API, which
//! keeps what a reading binary links small.

use std::sync::Arc;

use ::parquet::basic::{Encoding, LogicalType, Type as PhysicalType};
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

/// Column names, in file order.
pub const COLUMNS: [&str; 6] = ["open_time", "open", "high", "low", "close", "volume"];
const FLOAT_COLUMNS: [&str; 5] = ["open", "high", "low", "close", "volume"];

/// Rows per row group at most.
pub const MAX_ROW_GROUP_ROWS: usize = 1 << 20;

/// Page compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Snappy,
}

/// Encoding of the five `f64` columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatEncoding {
    Plain,
    /// Bytes of each value split into 8 streams: compresses far better with snappy.
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
        WriteOptions { compression: Compression::Snappy, float_encoding: FloatEncoding::Plain, delta_time: true }
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
    let mut props = WriterProperties::builder()
        .set_created_by(format!("pipai-market-data {}", env!("CARGO_PKG_VERSION")))
        .set_compression(match opts.compression {
            Compression::None => ::parquet::basic::Compression::UNCOMPRESSED,
            Compression::Snappy => ::parquet::basic::Compression::SNAPPY,
        })
        .set_max_row_group_row_count(Some(MAX_ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Chunk)
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
    let mut out = Vec::with_capacity(bars.len() * 32 + 4096);
    let mut writer = SerializedFileWriter::new(&mut out, schema(), Arc::new(props.build()))?;
    let n = bars.len();
    let mut start = 0;
    while start < n {
        let end = (start + MAX_ROW_GROUP_ROWS).min(n);
        let mut group = writer.next_row_group()?;
        let mut k = 0;
        while let Some(mut col) = group.next_column()? {
            if k == 0 {
                col.typed::<Int64Type>().write_batch(&bars.open_time[start..end], None, None)?;
            } else {
                let values = [&bars.open, &bars.high, &bars.low, &bars.close, &bars.volume][k - 1];
                col.typed::<DoubleType>().write_batch(&values[start..end], None, None)?;
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

/// Reads a bars file (see the module doc).
pub fn bars_from_parquet(bytes: impl Into<Bytes>) -> Result<Bars, ParquetBarsError> {
    let mut out = Bars::default();
    append_bars_from_parquet(bytes, &mut out)?;
    Ok(out)
}

/// Reads a bars file and appends its rows to `out` (for concatenating monthly partitions without
/// an intermediate copy). Returns the number of rows appended.
///
/// Uses Parquet's column readers directly (no Arrow arrays): pages are decoded straight into the
/// `Bars` vectors, one copy.
pub fn append_bars_from_parquet(bytes: impl Into<Bytes>, out: &mut Bars) -> Result<usize, ParquetBarsError> {
    let reader = SerializedFileReader::new(bytes.into())?;
    let meta = reader.metadata();
    let schema = meta.file_metadata().schema_descr();
    let mut idx = [0usize; 6];
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
    }
    let rows = meta.file_metadata().num_rows().max(0) as usize;
    out.open_time.reserve(rows);
    out.open.reserve(rows);
    out.high.reserve(rows);
    out.low.reserve(rows);
    out.close.reserve(rows);
    out.volume.reserve(rows);
    let before = out.len();
    let mut defs: Vec<i16> = Vec::new();
    for rg in 0..reader.num_row_groups() {
        let group = reader.get_row_group(rg)?;
        let n = group.metadata().num_rows().max(0) as usize;
        match group.get_column_reader(idx[0])? {
            ColumnReader::Int64ColumnReader(mut r) => read_all(&mut r, n, &mut defs, &mut out.open_time, "open_time")?,
            _ => unreachable!("physical type checked"),
        }
        for (k, dst) in
            [&mut out.open, &mut out.high, &mut out.low, &mut out.close, &mut out.volume].into_iter().enumerate()
        {
            match group.get_column_reader(idx[k + 1])? {
                ColumnReader::DoubleColumnReader(mut r) => read_all(&mut r, n, &mut defs, dst, COLUMNS[k + 1])?,
                _ => unreachable!("physical type checked"),
            }
        }
    }
    Ok(out.len() - before)
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
            return Err(ParquetBarsError::Parquet(::parquet::errors::ParquetError::General(format!(
                "column {name}: {} of {n} rows",
                done
            ))));
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
    fn round_trip_every_option_is_lossless() {
        let bars = generate_1m(11, 42_000.0, PRESET_ANCHOR_MS, PRESET_ANCHOR_MS + 3 * 86_400_000);
        for compression in [Compression::None, Compression::Snappy] {
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
        assert_eq!(bars_from_parquet(buf).unwrap(), bars);
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
        assert_eq!(time.compression(), ::parquet::basic::Compression::SNAPPY);
        assert!(time.encodings().any(|e| e == Encoding::DELTA_BINARY_PACKED));
        let t = meta.file_metadata().schema_descr().column(0);
        assert_eq!(t.logical_type_ref(), Some(&LogicalType::timestamp(true, ::parquet::basic::TimeUnit::MILLIS)));
    }
}
