//! What an ingest writes: which month partitions of which series, and the bars of each.
//!
//! # The rules
//!
//! An ingest of bars of timeframe `T` (the *base*) whose open times span `[first, last]`:
//!
//! - replaces, in the `T` series, every bar stored with `first <= open_time <= last` by the new
//!   bars: a bar the new data lacks in that span is gone afterwards (a gap, if the span holds
//!   bars on both sides), which is what makes a re-ingest a correction and idempotent;
//! - keeps every stored `T` bar outside the span, so loading a month day by day (Binance's daily
//!   files) adds to the month instead of truncating it;
//! - with derivation on, also writes each coarser timeframe (for a 1m ingest: 5m, 15m, 1h, 4h,
//!   1d), aggregated on UTC boundaries ([`crate::resample::resample`]) from the base series *as it is
//!   after the ingest*: the buckets the span touches are replaced, the other buckets are kept.
//!
//! Bars never cross a month (every timeframe divides a UTC day), so the work splits into months,
//! and each month partition of each series is rewritten whole, from the new bars plus the kept
//! ones. A month whose rewrite keeps bars needs its current partition read first
//! ([`IngestPlan::keeps_current`]); that happens only at the two ends of the span.
//!
//! Nothing here does I/O: the caller reads the current partitions, writes what
//! [`IngestPlan::month_partitions`] returns and updates the catalog with
//! [`crate::coverage::replace_range`] over each written month.

use pipai_engine::bars::{Bars, BarsError, Timeframe};

use crate::columns::BarColumns;
use crate::coverage::{Coverage, CoverageError};
use crate::layout::{month_ranges, validate_symbol, InvalidSymbol};
use crate::resample::{resample_columns, resample_each};
use crate::time::Month;
use pipai_engine::time::iso;

/// Why an ingest cannot be planned or a month built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Symbol(#[from] InvalidSymbol),
    #[error("no bars to ingest")]
    Empty,
    #[error("invalid bars: {0}")]
    Bars(#[from] BarsError),
    #[error("{0}")]
    Coverage(#[from] CoverageError),
    /// The caller did not pass a current partition that [`IngestPlan::keeps_current`] asked for.
    #[error("the current {timeframe} partition of {month} is needed to keep its bars outside the ingested span")]
    CurrentMissing { timeframe: Timeframe, month: Month },
    /// Encoding a partition failed (writing Parquet into memory: not expected to fail).
    #[error("encoding the {timeframe} partition: {reason}")]
    Encode { timeframe: Timeframe, reason: String },
    #[error("month {index} asked of a plan of {months} months")]
    NoSuchMonth { index: usize, months: usize },
    /// A current partition that holds bars of another month.
    #[error("the current {timeframe} partition of {month} holds a bar at {}, outside the month", iso(*.time))]
    CurrentOutsideMonth { timeframe: Timeframe, month: Month, time: i64 },
}

/// One series an ingest writes, and the open times it replaces in it (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replaced {
    pub timeframe: Timeframe,
    pub from_ms: i64,
    pub to_ms: i64,
}

/// The series, months and bars of one ingest (see the module doc).
#[derive(Debug, Clone)]
pub struct IngestPlan {
    symbol: String,
    /// The base series first, then the derived ones, finest first.
    series: Vec<Replaced>,
    /// The new base bars.
    bars: Bars,
    /// Their UTC months, and the rows of each.
    months: Vec<(Month, std::ops::Range<usize>)>,
}

/// The timeframes coarser than `base` that are built from it when deriving: all of them (each
/// of the six divides the next ones).
pub fn derived_timeframes(base: Timeframe) -> Vec<Timeframe> {
    Timeframe::ALL.into_iter().filter(|t| t.millis() > base.millis() && t.millis() % base.millis() == 0).collect()
}

impl IngestPlan {
    /// Plans the ingest of `bars` (valid, sorted, on `base`'s UTC grid) for `symbol`; with
    /// `derive`, every coarser timeframe is written too.
    pub fn new(symbol: &str, base: Timeframe, bars: &Bars, derive: bool) -> Result<IngestPlan, IngestError> {
        Self::from_bars(symbol, base, bars.clone(), derive)
    }

    /// [`IngestPlan::new`], keeping `bars` (no copy).
    pub fn from_bars(symbol: &str, base: Timeframe, bars: Bars, derive: bool) -> Result<IngestPlan, IngestError> {
        validate_symbol(symbol)?;
        if bars.is_empty() {
            return Err(IngestError::Empty);
        }
        validate(&bars)?;
        // On the grid, strictly increasing.
        let coverage = Coverage::from_bars(symbol, base, &bars)?;
        let (first, last) = (coverage.first_open_time, coverage.last_open_time);
        let mut series = vec![Replaced { timeframe: base, from_ms: first, to_ms: last }];
        if derive {
            for tf in derived_timeframes(base) {
                let step = tf.millis();
                // The buckets the span touches.
                series.push(Replaced {
                    timeframe: tf,
                    from_ms: first - first.rem_euclid(step),
                    to_ms: last - last.rem_euclid(step),
                });
            }
        }
        let months = month_ranges(&bars);
        Ok(IngestPlan { symbol: symbol.to_string(), series, bars, months })
    }

    pub fn symbol(&self) -> &str {
        &self.symbol
    }

    /// The base series first, then the derived ones.
    pub fn series(&self) -> &[Replaced] {
        &self.series
    }

    /// The months written, in order (the same for every series).
    pub fn months(&self) -> impl ExactSizeIterator<Item = Month> + '_ {
        self.months.iter().map(|(m, _)| *m)
    }

    /// New base bars.
    pub fn rows(&self) -> usize {
        self.bars.len()
    }

    /// Whether the rewrite of `month` in the series `timeframe` keeps bars of its current
    /// partition, according to that series' current coverage: then the caller must read the
    /// partition and pass it to [`IngestPlan::month_partitions`].
    pub fn keeps_current(&self, timeframe: Timeframe, month: Month, current: Option<&Coverage>) -> bool {
        let (Some(r), Some(c)) = (self.series.iter().find(|r| r.timeframe == timeframe), current) else {
            return false;
        };
        // Held bars of the month outside the replaced range: before it, or after it.
        let (m0, m1) = (month.start_ms(), month.end_ms() - 1);
        holds_any(c, m0, m1.min(r.from_ms - 1)) || holds_any(c, m0.max(r.to_ms + 1), m1)
    }

    /// The partitions of the `index`-th month (in [`IngestPlan::months`] order), base first:
    /// for each series, the new bars of the month plus the kept bars of its current partition.
    /// `coverages[k]` is the current coverage of `series()[k]`, and `partitions[k]` its current
    /// partition of the month, needed where [`IngestPlan::keeps_current`] says so (`None`
    /// elsewhere; either slice may be shorter than `series()`, missing entries are `None`).
    pub fn month_partitions(
        &self,
        index: usize,
        coverages: &[Option<Coverage>],
        partitions: &[Option<Bars>],
    ) -> Result<Vec<(Timeframe, Bars)>, IngestError> {
        self.each_partition(index, coverages, partitions, |tf, bars| Ok((tf, bars.to_bars())))
    }

    /// [`IngestPlan::month_partitions`] encoded as the store writes them, with the coverage of
    /// each (what the catalog then says of the month). Cheaper than encoding what
    /// `month_partitions` returns: the base month is encoded straight from the plan's bars
    /// (not copied out), each derived timeframe is aggregated from it in place, and nothing is
    /// validated twice (the plan's bars were, their aggregates are valid, and kept bars are
    /// validated once spliced).
    pub fn encode_month(
        &self,
        index: usize,
        coverages: &[Option<Coverage>],
        partitions: &[Option<Bars>],
    ) -> Result<Vec<EncodedPartition>, IngestError> {
        self.each_partition(index, coverages, partitions, |timeframe, bars| {
            Ok(EncodedPartition {
                timeframe,
                coverage: Coverage::from_open_times(&self.symbol, timeframe, bars.open_time)?,
                bytes: crate::parquet::valid_columns_to_parquet(bars)
                    .map_err(|e| IngestError::Encode { timeframe, reason: e.to_string() })?,
            })
        })
    }

    /// Calls `f` with each series' partition of the `index`-th month, base first (see
    /// [`IngestPlan::month_partitions`]), valid bars.
    fn each_partition<R>(
        &self,
        index: usize,
        coverages: &[Option<Coverage>],
        partitions: &[Option<Bars>],
        mut f: impl FnMut(Timeframe, BarColumns<'_>) -> Result<R, IngestError>,
    ) -> Result<Vec<R>, IngestError> {
        let (month, rows) =
            self.months.get(index).ok_or(IngestError::NoSuchMonth { index, months: self.months.len() })?;
        let mut out: Vec<R> = Vec::with_capacity(self.series.len());
        // The base month as written, when it keeps bars of its current partition.
        let mut spliced_base: Option<Bars> = None;
        // Every derived series' new bars, when the base month is the plan's bars alone: they
        // all lie in the replaced buckets, so each series is the aggregate of all of them.
        let mut aggregates: std::vec::IntoIter<Bars> = Vec::new().into_iter();
        for (k, r) in self.series.iter().enumerate() {
            if k == 1 && spliced_base.is_none() {
                let tfs: Vec<Timeframe> = self.series[1..].iter().map(|r| r.timeframe).collect();
                aggregates = resample_each(BarColumns::rows(&self.bars, rows.clone()), &tfs).into_iter();
            }
            let derived = match (k, &spliced_base) {
                (0, _) => None,
                (_, None) => aggregates.next(),
                // The base month as written, over the replaced buckets (whole buckets: the
                // range's last bucket ends one step later).
                (_, Some(base)) => Some(resample_columns(
                    BarColumns::of(base).window(r.from_ms, r.to_ms + r.timeframe.millis() - 1),
                    r.timeframe,
                )),
            };
            let coverage = coverages.get(k).and_then(Option::as_ref);
            let spliced = if self.keeps_current(r.timeframe, *month, coverage) {
                let kept = partitions
                    .get(k)
                    .and_then(Option::as_ref)
                    .ok_or(IngestError::CurrentMissing { timeframe: r.timeframe, month: *month })?;
                if let Some(&t) = kept.open_time.iter().find(|&&t| t < month.start_ms() || t >= month.end_ms()) {
                    return Err(IngestError::CurrentOutsideMonth { timeframe: r.timeframe, month: *month, time: t });
                }
                let new = match &derived {
                    Some(bars) => BarColumns::of(bars),
                    None => BarColumns::rows(&self.bars, rows.clone()),
                };
                let spliced = splice_columns(kept, r.from_ms, r.to_ms, new);
                spliced.validate()?;
                Some(spliced)
            } else {
                // The plan's bars were validated, and their aggregates are valid.
                None
            };
            let written = match (&spliced, &derived) {
                (Some(bars), _) | (None, Some(bars)) => BarColumns::of(bars),
                (None, None) => BarColumns::rows(&self.bars, rows.clone()),
            };
            out.push(f(r.timeframe, written)?);
            if k == 0 {
                spliced_base = spliced;
            }
        }
        Ok(out)
    }
}

/// One partition of a month, encoded (see [`IngestPlan::encode_month`]).
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedPartition {
    pub timeframe: Timeframe,
    /// The coverage of its bars (the month's, for the catalog).
    pub coverage: Coverage,
    /// The Parquet file.
    pub bytes: Vec<u8>,
}

/// Bars from this many on are validated in two halves at once (one thread each).
const PARALLEL_VALIDATE_ROWS: usize = 1 << 16;

/// [`Bars::validate`], the halves of a large series on two threads (the same error: the first
/// bad bar's).
fn validate(bars: &Bars) -> Result<(), BarsError> {
    let n = bars.len();
    if n < PARALLEL_VALIDATE_ROWS {
        return bars.validate();
    }
    bars.check_columns()?;
    crate::csv::on_each(vec![0..n / 2, n / 2..n], |rows| bars.validate_range(rows)).into_iter().collect()
}

/// What an ingest wrote (filled in by the store that ran the plan).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IngestReport {
    /// Bars ingested (of the base timeframe).
    pub rows: usize,
    /// Months rewritten, per series.
    pub months: usize,
    /// Partition files written, all series.
    pub files: usize,
    /// Parquet bytes written, all series.
    pub bytes: usize,
    /// The coverage of each written series after the ingest, base first.
    pub coverage: Vec<Coverage>,
}

/// Whether `c` holds a bar with `from <= open_time <= to`.
fn holds_any(c: &Coverage, from: i64, to: i64) -> bool {
    if from > to {
        return false;
    }
    match Coverage::needed(c.timeframe, from, to) {
        None => false,
        Some((nf, nl)) => {
            let missing: i64 = c.missing(from, to).iter().map(|g| g.bars(c.timeframe)).sum();
            missing < (nl - nf) / c.timeframe.millis() + 1
        }
    }
}

/// `current`'s bars before `from_ms`, then `new` (all inside `[from_ms, to_ms]`), then
/// `current`'s bars after `to_ms`.
pub fn splice(current: &Bars, from_ms: i64, to_ms: i64, new: &Bars) -> Bars {
    splice_columns(current, from_ms, to_ms, BarColumns::of(new))
}

/// [`splice`] of borrowed new bars.
fn splice_columns(current: &Bars, from_ms: i64, to_ms: i64, new: BarColumns<'_>) -> Bars {
    let before = current.open_time.partition_point(|&t| t < from_ms);
    let after = current.open_time.partition_point(|&t| t <= to_ms).max(before);
    let mut out = Bars::with_capacity(before + new.len() + current.len() - after);
    let current = BarColumns::of(current);
    for part in [current.slice(0..before), new, current.slice(after..current.len())] {
        out.open_time.extend_from_slice(part.open_time);
        for (dst, src) in
            [&mut out.open, &mut out.high, &mut out.low, &mut out.close, &mut out.volume].into_iter().zip(part.floats())
        {
            dst.extend_from_slice(src);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::generate_1m;
    use crate::resample::resample;
    use pipai_engine::time::ymd_ms;

    const M: i64 = 60_000;
    const H: i64 = 60 * M;

    fn month(s: &str) -> Month {
        s.parse().unwrap()
    }

    /// The store after writing what the plan returns, as (timeframe, month) -> bars, starting
    /// from `store`; every series of `store` must be a whole history (one `Bars` per series).
    fn apply(plan: &IngestPlan, store: &[(Timeframe, Bars)]) -> Vec<(Timeframe, Bars)> {
        let series: Vec<Timeframe> = plan.series().iter().map(|r| r.timeframe).collect();
        let held = |tf: Timeframe| store.iter().find(|(t, _)| *t == tf).map(|(_, b)| b);
        let coverages: Vec<Option<Coverage>> =
            series.iter().map(|&tf| held(tf).and_then(|b| Coverage::from_bars("BTCUSDT", tf, b).ok())).collect();
        let mut out: Vec<(Timeframe, Bars)> =
            series.iter().map(|&tf| (tf, held(tf).cloned().unwrap_or_default())).collect();
        for (i, m) in plan.months().enumerate() {
            let partitions: Vec<Option<Bars>> = series
                .iter()
                .enumerate()
                .map(|(k, &tf)| {
                    let b = held(tf)?;
                    plan.keeps_current(tf, m, coverages[k].as_ref())
                        .then(|| b.slice(b.window(m.start_ms(), m.end_ms() - 1)))
                })
                .collect();
            for (k, (tf, bars)) in plan.month_partitions(i, &coverages, &partitions).unwrap().into_iter().enumerate() {
                assert_eq!(tf, series[k]);
                assert!(bars.open_time.iter().all(|&t| Month::of_ms(t) == m));
                // Replace the month in the whole series.
                let whole = &out[k].1;
                let mut next = whole.slice(whole.window(i64::MIN, m.start_ms() - 1));
                crate::layout::append(&mut next, &bars);
                crate::layout::append(&mut next, &whole.slice(whole.window(m.end_ms(), i64::MAX)));
                out[k].1 = next;
            }
        }
        out
    }

    #[test]
    fn a_1m_ingest_replaces_its_span_and_derives_the_buckets_it_touches() {
        let first = ymd_ms(2024, 1, 30) + 12 * H + 34 * M;
        let last = ymd_ms(2024, 2, 2) + 10 * M;
        let new = generate_1m(5, 200.0, first, last + M);
        let plan = IngestPlan::new("BTCUSDT", Timeframe::M1, &new, true).unwrap();
        assert_eq!(plan.rows(), new.len());
        assert_eq!(plan.months().map(|m| m.to_string()).collect::<Vec<_>>(), ["2024-01", "2024-02"]);
        let r = plan.series();
        assert_eq!(r.len(), 6);
        assert_eq!(r[0], Replaced { timeframe: Timeframe::M1, from_ms: first, to_ms: last });
        assert_eq!(r[3], Replaced { timeframe: Timeframe::H1, from_ms: first - 34 * M, to_ms: last - 10 * M });
        assert_eq!(
            r[5],
            Replaced { timeframe: Timeframe::D1, from_ms: ymd_ms(2024, 1, 30), to_ms: ymd_ms(2024, 2, 2) }
        );

        // Nothing stored yet: the partitions are the new bars and their aggregates.
        let fresh = apply(&plan, &[]);
        assert_eq!(fresh[0].1, new);
        for (tf, bars) in &fresh[1..] {
            // Per month, as written; months do not split buckets, so this is the whole series.
            assert_eq!(*bars, resample(&new, *tf), "{tf}");
        }

        // Over a stored history of January and February (with its derived series): the span is
        // replaced, the rest kept, and each derived series is the aggregate of the 1m series as
        // it is afterwards.
        let old = generate_1m(9, 100.0, ymd_ms(2024, 1, 1), ymd_ms(2024, 3, 1));
        let mut store = vec![(Timeframe::M1, old.clone())];
        for tf in derived_timeframes(Timeframe::M1) {
            store.push((tf, resample(&old, tf)));
        }
        let cov = Coverage::from_bars("BTCUSDT", Timeframe::M1, &old).unwrap();
        assert!(plan.keeps_current(Timeframe::M1, month("2024-01"), Some(&cov)));
        assert!(plan.keeps_current(Timeframe::M1, month("2024-02"), Some(&cov)));
        assert!(!plan.keeps_current(Timeframe::M1, month("2024-02"), None));
        let after = apply(&plan, &store);
        let expected = splice(&old, first, last, &new);
        assert_eq!(after[0].1, expected);
        for (tf, bars) in &after[1..] {
            assert_eq!(*bars, resample(&expected, *tf), "{tf}");
        }
        // Idempotent.
        assert_eq!(apply(&plan, &after), after);
    }

    #[test]
    fn only_the_months_ends_are_read() {
        // A stored series inside the span: nothing to keep.
        let new = generate_1m(1, 10.0, ymd_ms(2024, 3, 1), ymd_ms(2024, 6, 1));
        let plan = IngestPlan::new("X", Timeframe::M1, &new, false).unwrap();
        assert_eq!(plan.series().len(), 1);
        let inside =
            Coverage::from_bars("X", Timeframe::M1, &generate_1m(2, 10.0, ymd_ms(2024, 4, 3), ymd_ms(2024, 4, 5)))
                .unwrap();
        assert!(plan.months().all(|m| !plan.keeps_current(Timeframe::M1, m, Some(&inside))));
        // Stored bars only in other months (Feb 29, Jun 1): nothing to keep either.
        let around = Coverage::from_open_times("X", Timeframe::M1, &[ymd_ms(2024, 2, 29), ymd_ms(2024, 6, 1)]).unwrap();
        assert!(plan.months().all(|m| !plan.keeps_current(Timeframe::M1, m, Some(&around))));
        // A timeframe the plan does not write is never read.
        assert!(!plan.keeps_current(Timeframe::H1, month("2024-03"), Some(&inside)));
    }

    #[test]
    fn a_dropped_bar_inside_the_span_is_gone_and_daily_ingests_add_up() {
        let day = |d: u32| generate_1m(3, 50.0, ymd_ms(2024, 5, d), ymd_ms(2024, 5, d + 1));
        // Day 1 then day 2: the month holds both.
        let p1 = IngestPlan::new("X", Timeframe::M1, &day(1), true).unwrap();
        let s1 = apply(&p1, &[]);
        let p2 = IngestPlan::new("X", Timeframe::M1, &day(2), true).unwrap();
        let s2 = apply(&p2, &s1);
        let mut both = day(1);
        crate::layout::append(&mut both, &day(2));
        assert_eq!(s2[0].1, both);
        assert_eq!(s2[5].1.len(), 2, "two daily bars");
        // Day 1 again without 00:10-00:19: those minutes are now missing, and the 5m bars of
        // 00:10 and 00:15 are gone (whole buckets empty), the 1h bar of 00:00 is rebuilt.
        let mut holed = day(1);
        let keep: Vec<usize> = (0..holed.len()).filter(|&i| !(10..20).contains(&i)).collect();
        holed = Bars::from_bars(&keep.iter().map(|&i| holed.get(i)).collect::<Vec<_>>());
        let p3 = IngestPlan::new("X", Timeframe::M1, &holed, true).unwrap();
        let s3 = apply(&p3, &s2);
        let cov = Coverage::from_bars("X", Timeframe::M1, &s3[0].1).unwrap();
        assert_eq!(cov.gaps.len(), 1);
        assert_eq!(
            (cov.gaps[0].from_ms, cov.gaps[0].to_ms),
            (ymd_ms(2024, 5, 1) + 10 * M, ymd_ms(2024, 5, 1) + 19 * M)
        );
        assert_eq!(s3[1].1.len(), s2[1].1.len() - 2);
        for (tf, bars) in &s3[1..] {
            assert_eq!(*bars, resample(&s3[0].1, *tf), "{tf}");
        }
    }

    #[test]
    fn an_hourly_ingest_writes_1h_and_derives_4h_and_1d() {
        let hours = resample(&generate_1m(4, 70.0, ymd_ms(2024, 7, 1), ymd_ms(2024, 7, 3)), Timeframe::H1);
        let plan = IngestPlan::new("X", Timeframe::H1, &hours, true).unwrap();
        let tfs: Vec<Timeframe> = plan.series().iter().map(|r| r.timeframe).collect();
        assert_eq!(tfs, [Timeframe::H1, Timeframe::H4, Timeframe::D1]);
        let written = plan.month_partitions(0, &[], &[]).unwrap();
        assert_eq!(written[0].1, hours);
        assert_eq!(written[1].1.len(), 12);
        assert_eq!(written[2].1.len(), 2);
        assert_eq!(derived_timeframes(Timeframe::D1), []);
        assert_eq!(derived_timeframes(Timeframe::M15), [Timeframe::H1, Timeframe::H4, Timeframe::D1]);
    }

    #[test]
    fn bad_input_and_a_missing_current_partition_are_errors() {
        assert_eq!(IngestPlan::new("X", Timeframe::M1, &Bars::default(), true).unwrap_err(), IngestError::Empty);
        let bars = generate_1m(1, 10.0, ymd_ms(2024, 1, 1), ymd_ms(2024, 1, 2));
        assert!(matches!(IngestPlan::new("btc", Timeframe::M1, &bars, true), Err(IngestError::Symbol(_))));
        // 1m bars are not on the 5m grid.
        assert!(matches!(IngestPlan::new("X", Timeframe::M5, &bars, true), Err(IngestError::Coverage(_))));
        let mut bad = bars.clone();
        bad.high[3] = bad.low[3] / 2.0;
        assert!(matches!(IngestPlan::new("X", Timeframe::M1, &bad, true), Err(IngestError::Bars(_))));

        let plan = IngestPlan::new("X", Timeframe::M1, &bars.slice(100..200), false).unwrap();
        let cov = Coverage::from_bars("X", Timeframe::M1, &bars).unwrap();
        let err = plan.month_partitions(0, &[Some(cov.clone())], &[]).unwrap_err();
        assert_eq!(err, IngestError::CurrentMissing { timeframe: Timeframe::M1, month: month("2024-01") });
        let stray = generate_1m(1, 10.0, ymd_ms(2024, 2, 1), ymd_ms(2024, 2, 2));
        let err = plan.month_partitions(0, &[Some(cov)], &[Some(stray)]).unwrap_err();
        assert!(matches!(err, IngestError::CurrentOutsideMonth { .. }), "{err}");
        assert_eq!(plan.month_partitions(1, &[], &[]).unwrap_err(), IngestError::NoSuchMonth { index: 1, months: 1 });
    }

    #[test]
    fn splice_keeps_both_sides() {
        let cur = generate_1m(1, 10.0, 0, 10 * M);
        let new = generate_1m(2, 20.0, 3 * M, 5 * M);
        let s = splice(&cur, 3 * M, 6 * M, &new);
        assert_eq!(s.open_time, [0, M, 2 * M, 3 * M, 4 * M, 7 * M, 8 * M, 9 * M]);
        assert_eq!(s.open[3], new.open[0]);
        assert_eq!(splice(&cur, 0, 20 * M, &new), new);
        assert_eq!(splice(&Bars::default(), 0, 1, &new), new);
    }

    #[test]
    fn encoded_months_are_the_partitions_encoded() {
        // Over a stored history (the months at the span's ends keep bars) and fresh.
        let first = ymd_ms(2024, 1, 30) + 12 * H + 34 * M;
        let new = generate_1m(5, 200.0, first, ymd_ms(2024, 2, 2) + 11 * M);
        let plan = IngestPlan::new("BTCUSDT", Timeframe::M1, &new, true).unwrap();
        let old = generate_1m(9, 100.0, ymd_ms(2024, 1, 1), ymd_ms(2024, 3, 1));
        let mut stored = vec![old.clone()];
        stored.extend(derived_timeframes(Timeframe::M1).into_iter().map(|tf| resample(&old, tf)));
        let coverages: Vec<Option<Coverage>> = plan
            .series()
            .iter()
            .zip(&stored)
            .map(|(r, b)| Some(Coverage::from_bars("BTCUSDT", r.timeframe, b).unwrap()))
            .collect();
        for (i, m) in plan.months().enumerate() {
            let current: Vec<Option<Bars>> =
                stored.iter().map(|b| Some(b.slice(b.window(m.start_ms(), m.end_ms() - 1)))).collect();
            for (coverages, current) in [(&coverages[..], &current[..]), (&[], &[])] {
                let expected = plan.month_partitions(i, coverages, current).unwrap();
                let encoded = plan.encode_month(i, coverages, current).unwrap();
                assert_eq!(encoded.len(), expected.len());
                for (e, (tf, bars)) in encoded.iter().zip(&expected) {
                    assert_eq!(e.timeframe, *tf);
                    assert_eq!(e.coverage, Coverage::from_bars("BTCUSDT", *tf, bars).unwrap());
                    assert_eq!(e.bytes, crate::parquet::bars_to_parquet(bars).unwrap(), "{m} {tf}");
                }
            }
        }
    }

    #[test]
    fn a_large_series_is_validated_in_halves_with_the_same_errors() {
        let bars = generate_1m(6, 100.0, 0, (PARALLEL_VALIDATE_ROWS as i64 + 10) * M);
        assert_eq!(validate(&bars), Ok(()));
        for bad in [[3, 0], [bars.len() - 2, 0], [bars.len() / 2 + 1, 7], [bars.len() / 2, bars.len() / 2 - 1]] {
            let mut broken = bars.clone();
            for i in bad.into_iter().filter(|&i| i > 0) {
                broken.high[i] = broken.low[i] / 2.0;
            }
            broken.open_time.swap(bad[0], bad[0] - 1);
            assert!(validate(&broken).is_err());
            assert_eq!(validate(&broken), broken.validate(), "{bad:?}");
        }
    }
}
