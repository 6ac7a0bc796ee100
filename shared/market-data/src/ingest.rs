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

use crate::coverage::{Coverage, CoverageError};
use crate::layout::{month_ranges, validate_symbol, InvalidSymbol};
use crate::resample::resample;
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
        bars.validate()?;
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
        let (month, rows) =
            self.months.get(index).ok_or(IngestError::NoSuchMonth { index, months: self.months.len() })?;
        let mut out: Vec<(Timeframe, Bars)> = Vec::with_capacity(self.series.len());
        for (k, r) in self.series.iter().enumerate() {
            let new = if k == 0 {
                self.bars.slice(rows.clone())
            } else {
                // The base month as written, over the replaced buckets (whole buckets: the
                // range's last bucket ends one step later).
                let base = &out[0].1;
                let window = base.window(r.from_ms, r.to_ms + r.timeframe.millis() - 1);
                resample(&base.slice(window), r.timeframe)
            };
            let coverage = coverages.get(k).and_then(Option::as_ref);
            let bars = if self.keeps_current(r.timeframe, *month, coverage) {
                let kept = partitions
                    .get(k)
                    .and_then(Option::as_ref)
                    .ok_or(IngestError::CurrentMissing { timeframe: r.timeframe, month: *month })?;
                if let Some(&t) = kept.open_time.iter().find(|&&t| t < month.start_ms() || t >= month.end_ms()) {
                    return Err(IngestError::CurrentOutsideMonth { timeframe: r.timeframe, month: *month, time: t });
                }
                let spliced = splice(kept, r.from_ms, r.to_ms, &new);
                spliced.validate()?;
                spliced
            } else {
                // The plan's bars were validated, and their aggregates are valid.
                new
            };
            out.push((r.timeframe, bars));
        }
        Ok(out)
    }
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
    let before = current.open_time.partition_point(|&t| t < from_ms);
    let after = current.open_time.partition_point(|&t| t <= to_ms).max(before);
    let mut out = Bars::with_capacity(before + new.len() + current.len() - after);
    for (src, range) in [(current, 0..before), (new, 0..new.len()), (current, after..current.len())] {
        out.open_time.extend_from_slice(&src.open_time[range.clone()]);
        out.open.extend_from_slice(&src.open[range.clone()]);
        out.high.extend_from_slice(&src.high[range.clone()]);
        out.low.extend_from_slice(&src.low[range.clone()]);
        out.close.extend_from_slice(&src.close[range.clone()]);
        out.volume.extend_from_slice(&src.volume[range]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::generate_1m;
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
}
