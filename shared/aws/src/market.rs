//! [`MarketData`] on S3 (one Parquet file per symbol, timeframe and UTC month, keys from
//! [`pipai_market_data::layout`]) with the coverage of each series in MarketCatalogTable.
//!
//! Catalog item (key `symbol` + `timeframe`): `coverage` (JSON of [`Coverage`]), `synthetic`,
//! `updated_at` (ms). The catalog is what readers trust: a series without an item is not held,
//! and a month that the coverage says is held must have its partition, with exactly the bars the
//! coverage says.
//!
//! # Writing
//!
//! [`S3MarketData::ingest`] runs an [`IngestPlan`]: a few months at a time, it reads the current
//! partitions the plan keeps bars from (only at the ends of the ingested span), builds and
//! encodes the month's partitions of every series (the ingested timeframe and the ones derived
//! from it) and PUTs each whole (a reader sees the old or the new file, never a mix). After the
//! files of a month are written, the catalog entry of each series has that month's coverage
//! *replaced* by the coverage of what was written ([`replace_range`]), other months untouched:
//! a re-ingest that drops bars shows the new gaps, and a failed ingest leaves the catalog
//! describing exactly the months that were rewritten. Catalog updates are conditional on the
//! coverage they replace (optimistic concurrency, retried on a race), and months that finish
//! together share one update per series.
//!
//! # Loading
//!
//! Loading lays the window out from the coverage alone (each month's bar count, hence where its
//! rows go in the output), fetches the partitions concurrently (at most [`FETCH_CONCURRENCY`] in
//! flight) and decodes each one as soon as it arrives, on a few threads, straight into its place
//! in the output columns: decoding overlaps the downloads and the bars are copied once. A file
//! whose row count differs from the coverage's is reported, never silently misplaced.

use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use pipai_engine::{Bars, Timeframe};
use pipai_market_data::layout::{partition_key, validate_symbol, InvalidSymbol};
use pipai_market_data::parquet::{BarsFile, FloatColumn};
use pipai_market_data::{bars_from_parquet, bars_to_parquet, replace_range, Coverage, IngestPlan, IngestReport, Month};
use pipai_service::ports::{DataError, MarketData, StoreError};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::error::{bad_item, store_err};
use crate::item::{b, get_s, n, opt_bool, s, Item};
use crate::s3::s3_client;
use crate::{env_lookup, jitter, now_ms, required, ConfigError};

/// Partition downloads in flight at once, by default.
pub const FETCH_CONCURRENCY: usize = 16;
/// Months an ingest rewrites at once, by default (each: a few PUTs, encoding on a blocking thread).
pub const WRITE_CONCURRENCY: usize = 8;
/// Attempts of a conditional catalog update when concurrent ingests race (with jittered
/// exponential backoff between them).
const CATALOG_ATTEMPTS: u32 = 40;

/// Bars in S3, coverage in the catalog table.
#[derive(Clone, Debug)]
pub struct S3MarketData {
    s3: aws_sdk_s3::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    bucket: String,
    catalog_table: String,
    fetch_concurrency: usize,
    write_concurrency: usize,
}

/// A catalog item as read: the coverage and its stored JSON text (the condition of the next
/// update).
#[derive(Debug, Clone)]
struct CatalogEntry {
    coverage: Coverage,
    text: String,
}

/// What one month's task of an ingest wrote, and the error that stopped it, if any.
struct MonthWritten {
    month: Month,
    /// Per partition written: its series (index into the plan's series), its coverage, its bytes.
    written: Vec<(usize, Coverage, usize)>,
    failure: Option<StoreError>,
}

impl S3MarketData {
    /// From `MARKET_DATA_BUCKET` and `MARKET_CATALOG_TABLE`.
    pub fn from_env(sdk: &SdkConfig) -> Result<Self, ConfigError> {
        Self::from_lookup(sdk, &env_lookup)
    }

    /// [`S3MarketData::from_env`] with the variables from `lookup`.
    pub fn from_lookup(sdk: &SdkConfig, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(S3MarketData {
            s3: s3_client(sdk, lookup),
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            bucket: required(lookup, "MARKET_DATA_BUCKET")?,
            catalog_table: required(lookup, "MARKET_CATALOG_TABLE")?,
            fetch_concurrency: FETCH_CONCURRENCY,
            write_concurrency: WRITE_CONCURRENCY,
        })
    }

    /// At most `n` (>= 1) partition downloads in flight per `load_bars` (default 16).
    pub fn with_fetch_concurrency(mut self, n: usize) -> Self {
        self.fetch_concurrency = n.max(1);
        self
    }

    /// At most `n` (>= 1) months rewritten at once per `ingest` (default 8).
    pub fn with_write_concurrency(mut self, n: usize) -> Self {
        self.write_concurrency = n.max(1);
        self
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn s3_client(&self) -> &aws_sdk_s3::Client {
        &self.s3
    }

    /// Writes what `plan` says (see the module doc and [`pipai_market_data::ingest`]): every
    /// month partition of every series it writes, and their coverage in the catalog, marked
    /// `synthetic` or not. Idempotent: running the same plan again writes the same files and
    /// coverage. On an error, the months already written stay written and catalogued; running
    /// the plan again completes it.
    pub async fn ingest(&self, plan: IngestPlan, synthetic: bool) -> Result<IngestReport, StoreError> {
        let plan = Arc::new(plan);
        let symbol = plan.symbol().to_string();
        let mut entries: Vec<Option<CatalogEntry>> = Vec::with_capacity(plan.series().len());
        for r in plan.series() {
            entries.push(
                self.catalog_entry(&symbol, r.timeframe)
                    .await?
                    .map(|(coverage, text, _)| CatalogEntry { coverage, text }),
            );
        }
        // The coverage before the ingest decides which partitions are read to keep bars.
        let before: Arc<Vec<Option<Coverage>>> =
            Arc::new(entries.iter().map(|e| e.as_ref().map(|e| e.coverage.clone())).collect());
        let months: Vec<Month> = plan.months().collect();
        let mut report = IngestReport { rows: plan.rows(), ..IngestReport::default() };
        let mut tasks: JoinSet<MonthWritten> = JoinSet::new();
        let mut next = 0;
        let mut failure: Option<StoreError> = None;
        loop {
            while failure.is_none() && next < months.len() && tasks.len() < self.write_concurrency {
                let (this, plan, before) = (self.clone(), plan.clone(), before.clone());
                let (index, month) = (next, months[next]);
                tasks.spawn(async move { this.write_month(&plan, &before, index, month).await });
                next += 1;
            }
            let Some(first) = tasks.join_next().await else { break };
            // Months that finished meanwhile share the catalog update.
            let mut done = vec![first];
            while let Some(more) = tasks.try_join_next() {
                done.push(more);
            }
            let mut written: Vec<(usize, Month, Coverage)> = Vec::new();
            for joined in done {
                match joined {
                    Ok(m) => {
                        if !m.written.is_empty() && m.written[0].0 == 0 {
                            report.months += 1;
                        }
                        for (k, coverage, bytes) in m.written {
                            report.files += 1;
                            report.bytes += bytes;
                            written.push((k, m.month, coverage));
                        }
                        if let Some(e) = m.failure {
                            failure.get_or_insert(e);
                        }
                    }
                    Err(e) => {
                        failure.get_or_insert(StoreError::new(format!("ingest {symbol}: a month's task failed: {e}")));
                    }
                }
            }
            // Catalog the months written, even when another one failed: it must describe the files.
            if let Err(e) = self.catalog_written(&plan, &mut entries, &written, synthetic).await {
                failure.get_or_insert(e);
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        report.coverage = entries.into_iter().flatten().map(|e| e.coverage).collect();
        Ok(report)
    }

    /// One month of an ingest: read what is kept, build, encode and PUT every series' partition.
    async fn write_month(
        &self,
        plan: &Arc<IngestPlan>,
        before: &Arc<Vec<Option<Coverage>>>,
        index: usize,
        month: Month,
    ) -> MonthWritten {
        let mut out = MonthWritten { month, written: Vec::new(), failure: None };
        let symbol = plan.symbol();
        let mut current: Vec<Option<Bars>> = vec![None; plan.series().len()];
        for (k, r) in plan.series().iter().enumerate() {
            if !plan.keeps_current(r.timeframe, month, before[k].as_ref()) {
                continue;
            }
            let read = async {
                let key = partition_key(symbol, r.timeframe, month).map_err(|e| StoreError::new(e.to_string()))?;
                let bytes =
                    Self::fetch(self.s3.clone(), self.bucket.clone(), key.clone()).await.map_err(|e| match e {
                        DataError::Store(e) => e,
                        DataError::Unavailable(m) => StoreError::new(m),
                    })?;
                bars_from_parquet(bytes).map_err(|e| {
                    StoreError::new(format!("s3://{}/{key} is unreadable, cannot keep its bars: {e}", self.bucket))
                })
            };
            match read.await {
                Ok(bars) => current[k] = Some(bars),
                Err(e) => {
                    out.failure = Some(e);
                    return out;
                }
            }
        }
        // Aggregating and encoding is CPU work: off the async workers.
        let built = {
            let (plan, before) = (plan.clone(), before.clone());
            tokio::task::spawn_blocking(move || -> Result<Vec<(usize, Coverage, Vec<u8>)>, String> {
                // Encoded from the plan's bars as they are (`IngestPlan::encode_month`).
                let parts = plan.encode_month(index, &before, &current).map_err(|e| e.to_string())?;
                Ok(parts.into_iter().enumerate().map(|(k, p)| (k, p.coverage, p.bytes)).collect())
            })
            .await
        };
        let parts = match built {
            Ok(Ok(parts)) => parts,
            Ok(Err(e)) => {
                out.failure = Some(StoreError::new(format!("ingest {symbol} {month}: {e}")));
                return out;
            }
            Err(e) => {
                out.failure =
                    Some(StoreError::new(format!("ingest {symbol} {month}: building the partitions failed: {e}")));
                return out;
            }
        };
        // The base series first: a month's derived files never get ahead of its base file.
        for (k, coverage, body) in parts {
            let tf = plan.series()[k].timeframe;
            let len = body.len();
            match self.put_partition(symbol, tf, month, body).await {
                Ok(()) => out.written.push((k, coverage, len)),
                Err(e) => {
                    out.failure = Some(e);
                    return out;
                }
            }
        }
        out
    }

    async fn put_partition(&self, symbol: &str, tf: Timeframe, month: Month, body: Vec<u8>) -> Result<(), StoreError> {
        let key = partition_key(symbol, tf, month).map_err(|e| StoreError::new(e.to_string()))?;
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/vnd.apache.parquet")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| store_err("s3", "PutObject", &format!("s3://{}/{key}", self.bucket), e))?;
        Ok(())
    }

    /// Replaces, in the catalog entry of each series, the coverage of the months written by the
    /// coverage of what was written (one conditional update per series).
    async fn catalog_written(
        &self,
        plan: &IngestPlan,
        entries: &mut [Option<CatalogEntry>],
        written: &[(usize, Month, Coverage)],
        synthetic: bool,
    ) -> Result<(), StoreError> {
        for (k, r) in plan.series().iter().enumerate() {
            let months: Vec<(Month, &Coverage)> =
                written.iter().filter(|(i, _, _)| *i == k).map(|(_, m, c)| (*m, c)).collect();
            if months.is_empty() {
                continue;
            }
            let change = |current: Option<&Coverage>| {
                let mut c = current.cloned();
                for (month, written) in &months {
                    c = replace_range(c.as_ref(), month.start_ms(), month.end_ms() - 1, Some(written))
                        .map_err(|e| StoreError::new(format!("catalog {} {}: {e}", plan.symbol(), r.timeframe)))?;
                }
                Ok(c)
            };
            entries[k] = self.update_coverage(plan.symbol(), r.timeframe, synthetic, entries[k].take(), change).await?;
        }
        Ok(())
    }

    /// Ingest side, one month: writes `bars` as the whole partition of `month` (one PutObject)
    /// and replaces that month's coverage in the catalog by theirs. `bars` must be non-empty,
    /// valid, on `tf`'s grid and inside `month`. [`S3MarketData::ingest`] is the usual way in.
    pub async fn put_month(
        &self,
        symbol: &str,
        tf: Timeframe,
        month: Month,
        bars: &Bars,
        synthetic: bool,
    ) -> Result<(), StoreError> {
        let invalid = |e: &dyn std::fmt::Display| StoreError::new(format!("put_month {symbol} {tf} {month}: {e}"));
        validate_symbol(symbol).map_err(|e| invalid(&e))?;
        let coverage = Coverage::from_bars(symbol, tf, bars).map_err(|e| invalid(&e))?;
        if coverage.first_open_time < month.start_ms() || coverage.last_open_time >= month.end_ms() {
            return Err(invalid(&"bars outside the month"));
        }
        let body = bars_to_parquet(bars).map_err(|e| invalid(&e))?;
        self.put_partition(symbol, tf, month, body).await?;
        let change = |current: Option<&Coverage>| {
            replace_range(current, month.start_ms(), month.end_ms() - 1, Some(&coverage)).map_err(|e| invalid(&e))
        };
        self.update_coverage(symbol, tf, synthetic, None, change).await?;
        Ok(())
    }

    /// Replaces the catalog item of `coverage`'s series (e.g. after rewriting all its months).
    pub async fn put_coverage(&self, coverage: &Coverage, synthetic: bool) -> Result<(), StoreError> {
        self.dynamodb
            .put_item()
            .table_name(&self.catalog_table)
            .set_item(Some(catalog_item(coverage, synthetic)?))
            .send()
            .await
            .map_err(|e| store_err("dynamodb", "PutItem", &self.catalog_table, e))?;
        Ok(())
    }

    /// Sets the catalog entry of a series to `change(current coverage)` (`None`: delete it),
    /// conditional on the entry being what `change` saw; on a race, reads it again and retries.
    /// `known` is the entry as last read or written by the caller (saves a read). Returns the
    /// entry as written.
    async fn update_coverage(
        &self,
        symbol: &str,
        tf: Timeframe,
        synthetic: bool,
        mut known: Option<CatalogEntry>,
        change: impl Fn(Option<&Coverage>) -> Result<Option<Coverage>, StoreError>,
    ) -> Result<Option<CatalogEntry>, StoreError> {
        let mut read = known.is_none();
        for attempt in 0..CATALOG_ATTEMPTS {
            if attempt > 0 {
                let cap = 5u64 << attempt.min(5);
                tokio::time::sleep(std::time::Duration::from_millis(1 + jitter() % cap)).await;
            }
            if read {
                known =
                    self.catalog_entry(symbol, tf).await?.map(|(coverage, text, _)| CatalogEntry { coverage, text });
            }
            read = true;
            let next = change(known.as_ref().map(|e| &e.coverage))?;
            let outcome = match (&next, &known) {
                (Some(c), _) => {
                    let item = catalog_item(c, synthetic)?;
                    let req = self.dynamodb.put_item().table_name(&self.catalog_table).set_item(Some(item));
                    let req = match &known {
                        None => req.condition_expression("attribute_not_exists(symbol)"),
                        Some(old) => req
                            .condition_expression("coverage = :old")
                            .expression_attribute_values(":old", s(old.text.clone())),
                    };
                    match req.send().await {
                        Ok(_) => Ok(()),
                        Err(e) => match e.as_service_error() {
                            Some(PutItemError::ConditionalCheckFailedException(_)) => Err(None),
                            _ => Err(Some(store_err("dynamodb", "PutItem (coverage)", &self.catalog_table, e))),
                        },
                    }
                }
                (None, None) => return Ok(None),
                (None, Some(old)) => {
                    let req = self
                        .dynamodb
                        .delete_item()
                        .table_name(&self.catalog_table)
                        .key("symbol", s(symbol))
                        .key("timeframe", s(tf.as_str()))
                        .condition_expression("coverage = :old")
                        .expression_attribute_values(":old", s(old.text.clone()));
                    match req.send().await {
                        Ok(_) => Ok(()),
                        Err(e) => match e.as_service_error() {
                            Some(DeleteItemError::ConditionalCheckFailedException(_)) => Err(None),
                            _ => Err(Some(store_err("dynamodb", "DeleteItem (coverage)", &self.catalog_table, e))),
                        },
                    }
                }
            };
            match outcome {
                Ok(()) => {
                    return match next {
                        None => Ok(None),
                        Some(coverage) => {
                            let text = coverage_text(&coverage)?;
                            Ok(Some(CatalogEntry { coverage, text }))
                        }
                    }
                }
                Err(None) => continue, // changed under us: read again
                Err(Some(e)) => return Err(e),
            }
        }
        Err(StoreError::new(format!(
            "dynamodb PutItem (coverage) on {}: {symbol} {tf} kept changing under concurrent ingests",
            self.catalog_table
        )))
    }

    /// The catalog item: coverage, its stored text and the synthetic flag.
    async fn catalog_entry(&self, symbol: &str, tf: Timeframe) -> Result<Option<(Coverage, String, bool)>, StoreError> {
        let out = self
            .dynamodb
            .get_item()
            .table_name(&self.catalog_table)
            .key("symbol", s(symbol))
            .key("timeframe", s(tf.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_err("dynamodb", "GetItem", &self.catalog_table, e))?;
        out.item
            .map(|item| parse_catalog_item(&item).map_err(|e| bad_item("catalog item", &self.catalog_table, e)))
            .transpose()
    }

    async fn fetch(s3: aws_sdk_s3::Client, bucket: String, key: String) -> Result<Bytes, DataError> {
        let resource = || format!("s3://{bucket}/{key}");
        let out = match s3.get_object().bucket(&bucket).key(&key).send().await {
            Ok(out) => out,
            Err(e) => {
                return Err(match e.as_service_error() {
                    Some(GetObjectError::NoSuchKey(_)) => DataError::Unavailable(format!(
                        "partition {} is missing, although the catalog says it is held",
                        resource()
                    )),
                    _ => DataError::Store(store_err("s3", "GetObject", &resource(), e)),
                })
            }
        };
        let body = out.body.collect().await.map_err(|e| store_err("s3", "GetObject (body)", &resource(), e))?;
        Ok(body.into_bytes())
    }
}

/// The JSON text a coverage is stored as (the condition of the next update compares it).
fn coverage_text(coverage: &Coverage) -> Result<String, StoreError> {
    serde_json::to_string(coverage).map_err(|e| StoreError::new(format!("coverage JSON: {e}")))
}

fn catalog_item(coverage: &Coverage, synthetic: bool) -> Result<Item, StoreError> {
    Ok(Item::from([
        ("symbol".to_string(), s(&coverage.symbol)),
        ("timeframe".to_string(), s(coverage.timeframe.as_str())),
        ("coverage".to_string(), s(coverage_text(coverage)?)),
        ("synthetic".to_string(), b(synthetic)),
        ("updated_at".to_string(), n(now_ms())),
    ]))
}

fn parse_catalog_item(item: &Item) -> Result<(Coverage, String, bool), String> {
    let text = get_s(item, "coverage")?;
    let coverage = Coverage::from_json(text.as_bytes()).map_err(|e| e.to_string())?;
    Ok((coverage, text.to_string(), opt_bool(item, "synthetic")?.unwrap_or(false)))
}

/// Held grid points `t` with `lo <= t <= hi`.
fn held_count(held: &[RangeInclusive<i64>], step: i64, lo: i64, hi: i64) -> usize {
    let mut n = 0;
    for r in held {
        let (from, to) = (lo.max(*r.start()), hi.min(*r.end()));
        if from > to {
            continue;
        }
        // Ranges start and end on the grid: round `from` up and `to` down to it.
        let first = r.start() + (from - r.start() + step - 1).div_euclid(step) * step;
        let last = r.start() + (to - r.start()).div_euclid(step) * step;
        if first <= last {
            n += ((last - first) / step + 1) as usize;
        }
    }
    n
}

/// One month partition a window needs, and where its rows go.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Part {
    month: Month,
    key: String,
    /// Rows the file holds (from the coverage).
    rows: usize,
    /// Its rows `skip..skip + take` are in the window ...
    skip: usize,
    take: usize,
    /// ... and go to `offset..offset + take` of the output.
    offset: usize,
}

/// The partitions of `[start_ms, end_ms]` that hold bars, laid out from the coverage alone, so
/// files can be decoded in any order straight into place.
fn plan_parts(coverage: &Coverage, start_ms: i64, end_ms: i64) -> Result<(Vec<Part>, usize), InvalidSymbol> {
    let step = coverage.timeframe.millis();
    let held = coverage.held_ranges();
    let (from, to) = (start_ms.max(coverage.first_open_time), end_ms.min(coverage.last_open_time));
    let mut parts = Vec::new();
    let mut offset = 0;
    for month in Month::range(from, to) {
        let (m0, m1) = (month.start_ms(), month.end_ms() - 1);
        let rows = held_count(&held, step, m0, m1);
        let take = held_count(&held, step, from.max(m0), to.min(m1));
        if rows == 0 || take == 0 {
            continue; // wholly inside a gap: no file
        }
        let skip = if from > m0 { held_count(&held, step, m0, from - 1) } else { 0 };
        let key = partition_key(&coverage.symbol, coverage.timeframe, month)?;
        parts.push(Part { month, key, rows, skip, take, offset });
        offset += take;
    }
    Ok((parts, offset))
}

/// The output columns of one part.
struct Dest<'a> {
    open_time: &'a mut [i64],
    open: &'a mut [f64],
    high: &'a mut [f64],
    low: &'a mut [f64],
    close: &'a mut [f64],
    volume: &'a mut [f64],
}

/// Splits `column` into the parts' output slices, in order.
fn split_column<'a, T>(mut column: &'a mut [T], parts: &[Part]) -> Vec<&'a mut [T]> {
    let mut out = Vec::with_capacity(parts.len());
    for p in parts {
        let (head, tail) = std::mem::take(&mut column).split_at_mut(p.take);
        out.push(head);
        column = tail;
    }
    out
}

/// Decodes the window rows of one partition file into `scratch` (after checking the file
/// against the catalog's coverage) and copies them into `dest`.
fn decode_part(part: &Part, bytes: Bytes, scratch: &mut Bars, dest: &mut Dest<'_>) -> Result<(), DataError> {
    let unreadable = |what: String| DataError::Unavailable(format!("partition {} is unreadable: {what}", part.key));
    let file = BarsFile::open(bytes).map_err(|e| unreadable(e.to_string()))?;
    if file.rows() != part.rows {
        return Err(DataError::Unavailable(format!(
            "partition {} has {} bars where the catalog's coverage says {}",
            part.key,
            file.rows(),
            part.rows
        )));
    }
    // Only the rows in the window: the months at the window's ends are decoded in part.
    let rows = part.skip..part.skip + part.take;
    scratch.open_time.clear();
    file.read_open_time(rows.clone(), &mut scratch.open_time).map_err(|e| unreadable(e.to_string()))?;
    for (column, values) in FloatColumn::ALL.into_iter().zip([
        &mut scratch.open,
        &mut scratch.high,
        &mut scratch.low,
        &mut scratch.close,
        &mut scratch.volume,
    ]) {
        values.clear();
        file.read_floats(column, rows.clone(), values).map_err(|e| unreadable(e.to_string()))?;
    }
    let t = &scratch.open_time;
    let (Some(&first), Some(&last)) = (t.first(), t.last()) else { return Err(unreadable("no bars".into())) };
    if first < part.month.start_ms() || last >= part.month.end_ms() {
        return Err(DataError::Unavailable(format!("partition {} holds bars outside its month", part.key)));
    }
    dest.open_time.copy_from_slice(&scratch.open_time);
    dest.open.copy_from_slice(&scratch.open);
    dest.high.copy_from_slice(&scratch.high);
    dest.low.copy_from_slice(&scratch.low);
    dest.close.copy_from_slice(&scratch.close);
    dest.volume.copy_from_slice(&scratch.volume);
    Ok(())
}

/// Decodes the parts whose files arrive on `rx` (in any order) into one `Bars` of `total` rows,
/// on up to [`decode_threads`] threads.
fn decode_parts(
    parts: &[Part],
    total: usize,
    rx: std::sync::mpsc::Receiver<(usize, Bytes)>,
) -> Result<Bars, DataError> {
    let mut out = Bars::zeroed(total);
    {
        let mut open_time = split_column(&mut out.open_time, parts).into_iter();
        let mut open = split_column(&mut out.open, parts).into_iter();
        let mut high = split_column(&mut out.high, parts).into_iter();
        let mut low = split_column(&mut out.low, parts).into_iter();
        let mut close = split_column(&mut out.close, parts).into_iter();
        let mut volume = split_column(&mut out.volume, parts).into_iter();
        let dests: Vec<Mutex<Dest<'_>>> = parts
            .iter()
            .filter_map(|_| {
                Some(Mutex::new(Dest {
                    open_time: open_time.next()?,
                    open: open.next()?,
                    high: high.next()?,
                    low: low.next()?,
                    close: close.next()?,
                    volume: volume.next()?,
                }))
            })
            .collect();
        let rx = Mutex::new(rx);
        let failure: Mutex<Option<DataError>> = Mutex::new(None);
        let decoded = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..decode_threads().min(parts.len()) {
                scope.spawn(|| {
                    let mut scratch = Bars::default();
                    loop {
                        let received = rx.lock().map(|r| r.recv());
                        let Ok(Ok((i, bytes))) = received else { return };
                        let Ok(mut dest) = dests[i].lock() else { return };
                        if let Err(e) = decode_part(&parts[i], bytes, &mut scratch, &mut dest) {
                            if let Ok(mut f) = failure.lock() {
                                f.get_or_insert(e);
                            }
                            return;
                        }
                        decoded.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        if let Some(e) = failure.into_inner().ok().flatten() {
            return Err(e);
        }
        let decoded = decoded.into_inner();
        if decoded != parts.len() {
            return Err(DataError::Store(StoreError::new(format!(
                "only {decoded} of {} partitions were received",
                parts.len()
            ))));
        }
    }
    Ok(out)
}

/// Decoder threads per load: the machine's parallelism, at most 4.
fn decode_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4)
}

impl MarketData for S3MarketData {
    async fn coverage(&self, symbol: &str, timeframe: Timeframe) -> Result<Option<Coverage>, StoreError> {
        Ok(self.catalog_entry(symbol, timeframe).await?.map(|(c, _, _)| c))
    }

    async fn catalog(&self) -> Result<Vec<(Coverage, bool)>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .dynamodb
                .scan()
                .table_name(&self.catalog_table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_err("dynamodb", "Scan", &self.catalog_table, e))?;
            for item in page.items() {
                let (c, _, synthetic) =
                    parse_catalog_item(item).map_err(|e| bad_item("catalog item", &self.catalog_table, e))?;
                out.push((c, synthetic));
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        out.sort_by(|a, b| (&a.0.symbol, a.0.timeframe).cmp(&(&b.0.symbol, b.0.timeframe)));
        Ok(out)
    }

    async fn load_bars(
        &self,
        symbol: &str,
        timeframe: Timeframe,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Bars, DataError> {
        validate_symbol(symbol).map_err(|e| DataError::Unavailable(e.to_string()))?;
        let Some(coverage) = self.coverage(symbol, timeframe).await? else {
            return Err(DataError::Unavailable(format!("no {timeframe} bars for {symbol}")));
        };
        let (parts, total) =
            plan_parts(&coverage, start_ms, end_ms).map_err(|e| DataError::Unavailable(e.to_string()))?;
        if parts.is_empty() {
            return Ok(Bars::default());
        }
        let parts = Arc::new(parts);
        let (tx, rx) = std::sync::mpsc::channel();
        let decoder = {
            let parts = parts.clone();
            tokio::task::spawn_blocking(move || decode_parts(&parts, total, rx))
        };
        let permits = Arc::new(Semaphore::new(self.fetch_concurrency));
        let mut fetches = JoinSet::new();
        for (i, part) in parts.iter().enumerate() {
            let (s3, bucket, key, permits) = (self.s3.clone(), self.bucket.clone(), part.key.clone(), permits.clone());
            fetches.spawn(async move {
                let _permit = permits.acquire_owned().await;
                (i, Self::fetch(s3, bucket, key).await)
            });
        }
        // Hand each file to the decoders as it arrives.
        let mut failure = None;
        while let Some(joined) = fetches.join_next().await {
            match joined {
                Ok((i, Ok(bytes))) => {
                    if tx.send((i, bytes)).is_err() {
                        break; // the decoders stopped on an error: reported below
                    }
                }
                Ok((_, Err(e))) => {
                    failure = Some(e);
                    break;
                }
                Err(e) => {
                    failure = Some(DataError::Store(StoreError::new(format!("s3 GetObject task failed: {e}"))));
                    break;
                }
            }
        }
        drop(tx);
        fetches.abort_all();
        let decoded = decoder.await.map_err(|e| {
            DataError::Store(StoreError::new(format!("decoding {symbol} {timeframe} bars failed: {e}")))
        })?;
        match failure {
            Some(e) => Err(e),
            None => decoded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipai_market_data::time::ymd_ms;

    const M: i64 = 60_000;

    #[test]
    fn parts_are_laid_out_from_the_coverage() {
        // 1m bars from Jan 31 00:00 to Feb 1 23:59 with a gap of 10 bars on Feb 1 from 01:00,
        // then nothing until Apr 1 00:00 - Apr 1 00:09.
        let jan31 = ymd_ms(2024, 1, 31);
        let feb1 = ymd_ms(2024, 2, 1);
        let apr1 = ymd_ms(2024, 4, 1);
        let mut times: Vec<i64> =
            (0..2 * 1440).map(|i| jan31 + i * M).filter(|t| !(feb1 + 60 * M..feb1 + 70 * M).contains(t)).collect();
        times.extend((0..10).map(|i| apr1 + i * M));
        let cov = Coverage::from_open_times("BTCUSDT", Timeframe::M1, &times).unwrap();

        let (parts, total) = plan_parts(&cov, 0, i64::MAX / 2).unwrap();
        let months: Vec<String> = parts.iter().map(|p| p.month.to_string()).collect();
        assert_eq!(months, ["2024-01", "2024-02", "2024-04"], "March is a gap: no file");
        assert_eq!(total, times.len());
        assert_eq!(
            parts[0],
            Part { month: parts[0].month, key: parts[0].key.clone(), rows: 1440, skip: 0, take: 1440, offset: 0 }
        );
        assert_eq!((parts[1].rows, parts[1].skip, parts[1].take, parts[1].offset), (1430, 0, 1430, 1440));
        assert_eq!((parts[2].rows, parts[2].take, parts[2].offset), (10, 10, 2870));
        assert_eq!(parts[1].key, "bars/v1/symbol=BTCUSDT/timeframe=1m/month=2024-02.parquet");

        // A window from Jan 31 12:00:30 (rounds up) to Feb 1 02:00 (inclusive).
        let (parts, total) = plan_parts(&cov, jan31 + 720 * M + 30_000, feb1 + 120 * M).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0].skip, parts[0].take), (721, 719));
        assert_eq!((parts[1].skip, parts[1].take, parts[1].offset), (0, 121 - 10, 719));
        assert_eq!(total, 719 + 111);
        let expected = times.iter().filter(|&&t| t >= jan31 + 720 * M + 30_000 && t <= feb1 + 120 * M).count();
        assert_eq!(total, expected);

        // Inside the March gap, or outside the coverage: nothing to read.
        assert_eq!(plan_parts(&cov, ymd_ms(2024, 3, 2), ymd_ms(2024, 3, 20)).unwrap().1, 0);
        assert!(plan_parts(&cov, 0, jan31 - 1).unwrap().0.is_empty());
        assert_eq!(held_count(&cov.held_ranges(), M, feb1 + 59 * M, feb1 + 71 * M), 3);
    }
}
