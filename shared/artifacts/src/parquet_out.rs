//! A flat Parquet file from whole columns: the writer settings of the market-data files (ZSTD
//! level 1, DELTA_BINARY_PACKED times, chunk statistics, row groups of at most 1,048,576 rows),
//! Parquet's own low-level writer, no Arrow.

use std::sync::Arc;

use ::parquet::basic::{Compression, Encoding, ZstdLevel};
use ::parquet::data_type::{ByteArray, ByteArrayType, DoubleType, FixedLenByteArray, FixedLenByteArrayType, Int64Type};
use ::parquet::errors::ParquetError;
use ::parquet::file::properties::{EnabledStatistics, WriterProperties};
use ::parquet::file::writer::SerializedFileWriter;
use ::parquet::schema::parser::parse_message_type;
use ::parquet::schema::types::ColumnPath;
use pipai_market_data::parquet::MAX_ROW_GROUP_ROWS;
use rust_decimal::Decimal;

/// One column's values, in schema order.
pub(crate) enum Column<'a> {
    /// INT64: a TIMESTAMP(MILLIS, UTC) or a plain integer.
    Int64 {
        values: &'a [i64],
        delta: bool,
    },
    Double(&'a [f64]),
    Text(&'a [ByteArray]),
    Decimal(&'a [FixedLenByteArray]),
}

/// Scale of the `DECIMAL(38, 8)` columns: the result's money, prices and quantities.
pub(crate) const DECIMAL_SCALE: u32 = 8;

/// `d` as a `DECIMAL(38, 8)` value: the unscaled integer, 16 bytes big-endian two's complement.
/// The result's decimals have at most 8 places, so nothing is rounded.
pub(crate) fn decimal(d: Decimal) -> FixedLenByteArray {
    let mut d = d;
    d.rescale(DECIMAL_SCALE);
    FixedLenByteArray::from(ByteArray::from(d.mantissa().to_be_bytes().to_vec()))
}

pub(crate) fn text(s: &str) -> ByteArray {
    ByteArray::from(s.as_bytes().to_vec())
}

/// Writes `rows` rows of `columns` with `schema` (Parquet's message-type text).
pub(crate) fn write(schema: &str, columns: &[Column<'_>], rows: usize) -> Result<Vec<u8>, ParquetError> {
    let schema = Arc::new(parse_message_type(schema)?);
    let mut props = WriterProperties::builder()
        .set_created_by(format!("pipai-artifacts {}", env!("CARGO_PKG_VERSION")))
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
        .set_max_row_group_row_count(Some(MAX_ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_dictionary_enabled(false);
    for (field, c) in schema.get_fields().iter().zip(columns) {
        let path = ColumnPath::from(field.name());
        match c {
            Column::Int64 { delta: true, .. } => props = props.set_column_encoding(path, Encoding::DELTA_BINARY_PACKED),
            // Side, symbol, exit reason: a handful of distinct words.
            Column::Text(_) => props = props.set_column_dictionary_enabled(path, true),
            _ => {}
        }
    }
    let mut out = Vec::with_capacity(rows * 24 + 4096);
    let mut writer = SerializedFileWriter::new(&mut out, schema, Arc::new(props.build()))?;
    let mut start = 0;
    while start < rows {
        let end = (start + MAX_ROW_GROUP_ROWS).min(rows);
        let mut group = writer.next_row_group()?;
        for c in columns {
            let mut col =
                group.next_column()?.ok_or_else(|| ParquetError::General("more columns than the schema".into()))?;
            match c {
                Column::Int64 { values, .. } => {
                    col.typed::<Int64Type>().write_batch(&values[start..end], None, None)?;
                }
                Column::Double(values) => {
                    col.typed::<DoubleType>().write_batch(&values[start..end], None, None)?;
                }
                Column::Text(values) => {
                    col.typed::<ByteArrayType>().write_batch(&values[start..end], None, None)?;
                }
                Column::Decimal(values) => {
                    col.typed::<FixedLenByteArrayType>().write_batch(&values[start..end], None, None)?;
                }
            }
            col.close()?;
        }
        group.close()?;
        start = end;
    }
    writer.close()?;
    Ok(out)
}
