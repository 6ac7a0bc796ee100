//! What the store holds for one symbol and timeframe, and whether a backtest window is covered.
//!
//! # Model
//!
//! Bars sit on a grid: a bar of timeframe `tf` opens at a multiple of `tf.millis()` since the Unix
//! epoch (all six timeframes divide a UTC day, so this is the UTC-aligned grid: 4h bars open at
//! 00, 04, .. 20 UTC, 1d bars at midnight UTC). A [`Coverage`] is the first and last open time
//! held plus the [`Gap`]s: maximal runs of grid points between them that have no bar. A gap's
//! `from_ms` and `to_ms` are the open times of its first and last **missing** bar, both
//! inclusive (the same convention as the job window), so a single missing 1m bar at 00:05 is
//! `Gap { from_ms: 00:05, to_ms: 00:05 }`.
//!
//! # The covering rule
//!
//! A window `[start_ms, end_ms]` (inclusive at both ends, as in the job config) **needs** every
//! grid point `t` with `start_ms <= t <= end_ms`. It is **covered** when every needed bar is held:
//! it lies within `[first_open_time, last_open_time]` **and no gap intersects it**. A window with a
//! gap inside is *not* covered; [`Coverage::check`] then returns an [`Uncovered`] that lists the
//! missing ranges in words. (Binance's own history has a few exchange-outage gaps, e.g. hours in
//! 2018-2019; a caller that wants to tolerate those can call [`Coverage::missing`] and decide
//! itself instead of using `check`.) A window that needs no bar at all (shorter than one bar and
//! containing no grid point) is trivially covered; the engine reports "no bars" for it.
//!
//! # Ingests and re-ingests
//!
//! The stored coverage must describe exactly what the partitions hold. An ingest rewrites whole
//! month partitions, so the catalog is updated with [`replace_range`]: whatever the old coverage
//! said about the rewritten months is dropped and replaced by the coverage of what was written,
//! and the other months keep theirs. A re-ingest that drops bars inside a month therefore shows
//! the new gap (a union would hide it). [`Coverage::merge`] is the plain union of two coverages of
//! the same symbol and timeframe (held ranges are unioned; whatever lies between them becomes a
//! gap). The coverage serialises to JSON ([`Coverage::to_json`]) for the catalog.

use std::fmt;
use std::ops::RangeInclusive;

use pipai_engine::bars::{Bars, Timeframe};
use serde::{Deserialize, Serialize};

use pipai_engine::time::iso;

/// A run of missing bars: open times of the first and last missing bar, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    pub from_ms: i64,
    pub to_ms: i64,
}

impl Gap {
    /// Number of missing bars.
    pub fn bars(&self, tf: Timeframe) -> i64 {
        (self.to_ms - self.from_ms) / tf.millis() + 1
    }
}

/// The bars held for one symbol and timeframe: first and last open time and the gaps between.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    pub symbol: String,
    #[serde(with = "timeframe_serde")]
    pub timeframe: Timeframe,
    pub first_open_time: i64,
    pub last_open_time: i64,
    /// Sorted, disjoint, non-adjacent, strictly inside `(first_open_time, last_open_time)`.
    pub gaps: Vec<Gap>,
}

/// Why a coverage could not be built or merged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoverageError {
    #[error("no bars")]
    Empty,
    #[error("open_time {} is not on the {tf} grid (a multiple of {} ms)", iso(*.time), .tf.millis())]
    Misaligned { time: i64, tf: Timeframe },
    #[error("open_time {} is not after the previous {}", iso(*.time), iso(*.previous))]
    NotIncreasing { time: i64, previous: i64 },
    #[error("cannot merge coverage of {a} with {b}")]
    Mismatch { a: String, b: String },
    #[error("invalid coverage JSON: {0}")]
    Json(String),
    #[error(
        "bars from {} to {} are outside the replaced range {} to {}",
        iso(*.first), iso(*.last), iso(*.from), iso(*.to)
    )]
    OutsideRange { first: i64, last: i64, from: i64, to: i64 },
}

impl Coverage {
    /// Coverage of sorted `open_times` on `tf`'s grid. Errors when empty, unsorted or off-grid.
    pub fn from_open_times(symbol: &str, tf: Timeframe, open_times: &[i64]) -> Result<Coverage, CoverageError> {
        let (&first, &last) = match (open_times.first(), open_times.last()) {
            (Some(f), Some(l)) => (f, l),
            _ => return Err(CoverageError::Empty),
        };
        let step = tf.millis();
        if first.rem_euclid(step) != 0 {
            return Err(CoverageError::Misaligned { time: first, tf });
        }
        let mut gaps = Vec::new();
        for w in open_times.windows(2) {
            let (previous, time) = (w[0], w[1]);
            let d = time - previous;
            if d == step {
                continue;
            }
            if d <= 0 {
                return Err(CoverageError::NotIncreasing { time, previous });
            }
            if d % step != 0 {
                return Err(CoverageError::Misaligned { time, tf });
            }
            gaps.push(Gap { from_ms: previous + step, to_ms: time - step });
        }
        Ok(Coverage { symbol: symbol.to_string(), timeframe: tf, first_open_time: first, last_open_time: last, gaps })
    }

    /// [`Coverage::from_open_times`] of `bars.open_time`.
    pub fn from_bars(symbol: &str, tf: Timeframe, bars: &Bars) -> Result<Coverage, CoverageError> {
        Coverage::from_open_times(symbol, tf, &bars.open_time)
    }

    /// The held ranges (inclusive open times), in order: the complement of the gaps.
    pub fn held_ranges(&self) -> Vec<RangeInclusive<i64>> {
        let step = self.timeframe.millis();
        let mut out = Vec::with_capacity(self.gaps.len() + 1);
        let mut from = self.first_open_time;
        for g in &self.gaps {
            out.push(from..=g.from_ms - step);
            from = g.to_ms + step;
        }
        out.push(from..=self.last_open_time);
        out
    }

    /// Number of bars held.
    pub fn bar_count(&self) -> i64 {
        let tf = self.timeframe;
        (self.last_open_time - self.first_open_time) / tf.millis() + 1
            - self.gaps.iter().map(|g| g.bars(tf)).sum::<i64>()
    }

    /// The union of two coverages of the same symbol and timeframe.
    pub fn merge(&self, other: &Coverage) -> Result<Coverage, CoverageError> {
        self.same_series(other)?;
        let mut ranges = self.held_ranges();
        ranges.extend(other.held_ranges());
        // Both are non-empty, so the union is.
        Coverage::from_ranges(&self.symbol, self.timeframe, ranges).ok_or(CoverageError::Empty)
    }

    fn same_series(&self, other: &Coverage) -> Result<(), CoverageError> {
        if self.symbol != other.symbol || self.timeframe != other.timeframe {
            return Err(CoverageError::Mismatch {
                a: format!("{} {}", self.symbol, self.timeframe),
                b: format!("{} {}", other.symbol, other.timeframe),
            });
        }
        Ok(())
    }

    /// The coverage of the held `ranges` (on the grid, inclusive, in any order, overlapping or
    /// adjacent ones allowed); `None` when there are none.
    fn from_ranges(symbol: &str, tf: Timeframe, mut ranges: Vec<RangeInclusive<i64>>) -> Option<Coverage> {
        let step = tf.millis();
        ranges.sort_by_key(|r| *r.start());
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(ranges.len());
        for r in ranges {
            let (s, e) = (*r.start(), *r.end());
            if s > e {
                continue;
            }
            match merged.last_mut() {
                Some(last) if s <= last.1 + step => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        let (first, last) = (merged.first()?.0, merged.last()?.1);
        let gaps = merged.windows(2).map(|w| Gap { from_ms: w[0].1 + step, to_ms: w[1].0 - step }).collect();
        Some(Coverage { symbol: symbol.to_string(), timeframe: tf, first_open_time: first, last_open_time: last, gaps })
    }

    /// This coverage without the bars whose open time is in `[from_ms, to_ms]`; `None` when
    /// nothing is left.
    pub fn without(&self, from_ms: i64, to_ms: i64) -> Option<Coverage> {
        let step = self.timeframe.millis();
        let mut kept = Vec::new();
        for r in self.held_ranges() {
            let (s, e) = (*r.start(), *r.end());
            if e < from_ms || s > to_ms {
                kept.push(r);
                continue;
            }
            // The part before `from_ms`: up to the last grid point below it (counted from `s`,
            // which is on the grid, so no arithmetic can overflow on extreme bounds).
            if s < from_ms {
                kept.push(s..=s + (from_ms - 1 - s) / step * step);
            }
            // The part after `to_ms`: from the first grid point above it.
            if e > to_ms {
                kept.push(e - (e - to_ms - 1) / step * step..=e);
            }
        }
        Coverage::from_ranges(&self.symbol, self.timeframe, kept)
    }

    /// The grid points a window `[start_ms, end_ms]` needs, as an inclusive range of open times;
    /// `None` when it needs none.
    pub fn needed(tf: Timeframe, start_ms: i64, end_ms: i64) -> Option<(i64, i64)> {
        let step = tf.millis();
        let first = start_ms + (step - start_ms.rem_euclid(step)) % step;
        let last = end_ms - end_ms.rem_euclid(step);
        (first <= last).then_some((first, last))
    }

    /// The needed bars of the window `[start_ms, end_ms]` that are not held, as gaps (including
    /// any part before the first or after the last bar held). Empty when the window is covered.
    pub fn missing(&self, start_ms: i64, end_ms: i64) -> Vec<Gap> {
        let step = self.timeframe.millis();
        let Some((nf, nl)) = Coverage::needed(self.timeframe, start_ms, end_ms) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut push = |from: i64, to: i64| {
            let (from, to) = (from.max(nf), to.min(nl));
            if from <= to {
                out.push(Gap { from_ms: from, to_ms: to });
            }
        };
        push(i64::MIN, self.first_open_time - step);
        for g in &self.gaps {
            push(g.from_ms, g.to_ms);
        }
        push(self.last_open_time + step, i64::MAX);
        out
    }

    /// `Ok` when every bar the window `[start_ms, end_ms]` needs is held (see the module doc for
    /// the rule: gaps inside the window make it uncovered).
    pub fn check(&self, start_ms: i64, end_ms: i64) -> Result<(), Uncovered> {
        let missing = self.missing(start_ms, end_ms);
        if missing.is_empty() {
            return Ok(());
        }
        Err(Uncovered {
            symbol: self.symbol.clone(),
            timeframe: self.timeframe,
            start_ms,
            end_ms,
            available: Some(Box::new(self.clone())),
            missing,
        })
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("coverage serialises")
    }

    pub fn from_json(bytes: &[u8]) -> Result<Coverage, CoverageError> {
        serde_json::from_slice(bytes).map_err(|e| CoverageError::Json(e.to_string()))
    }
}

/// [`Coverage::check`] for a symbol that may have no data at all.
pub fn check_window(
    coverage: Option<&Coverage>,
    symbol: &str,
    tf: Timeframe,
    start_ms: i64,
    end_ms: i64,
) -> Result<(), Uncovered> {
    match coverage {
        Some(c) => c.check(start_ms, end_ms),
        None => match Coverage::needed(tf, start_ms, end_ms) {
            None => Ok(()),
            Some((from_ms, to_ms)) => Err(Uncovered {
                symbol: symbol.to_string(),
                timeframe: tf,
                start_ms,
                end_ms,
                available: None,
                missing: vec![Gap { from_ms, to_ms }],
            }),
        },
    }
}

/// The coverage of a series after the bars it held in `[from_ms, to_ms]` were replaced by
/// bars whose coverage is `written` (`None`: by nothing). `current` is the coverage before
/// (`None`: nothing was held); the result is `None` when nothing is held after.
///
/// This is how the catalog follows a rewrite of whole month partitions: pass the month's
/// bounds and the coverage of the bars written for it. `written` must lie inside the range and
/// be of the same series as `current`.
pub fn replace_range(
    current: Option<&Coverage>,
    from_ms: i64,
    to_ms: i64,
    written: Option<&Coverage>,
) -> Result<Option<Coverage>, CoverageError> {
    if let Some(w) = written {
        if w.first_open_time < from_ms || w.last_open_time > to_ms {
            return Err(CoverageError::OutsideRange {
                first: w.first_open_time,
                last: w.last_open_time,
                from: from_ms,
                to: to_ms,
            });
        }
    }
    let kept = match current {
        Some(c) => {
            if let Some(w) = written {
                c.same_series(w)?;
            }
            c.without(from_ms, to_ms)
        }
        None => None,
    };
    Ok(match (kept, written) {
        (Some(k), Some(w)) => Some(k.merge(w)?),
        (Some(k), None) => Some(k),
        (None, w) => w.cloned(),
    })
}

/// A window that is not covered. Its `Display` says in words what is held and what is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uncovered {
    pub symbol: String,
    pub timeframe: Timeframe,
    pub start_ms: i64,
    pub end_ms: i64,
    /// What is held; `None` when nothing is.
    pub available: Option<Box<Coverage>>,
    /// The needed bars that are missing.
    pub missing: Vec<Gap>,
}

/// How many ranges a message lists before "and N more".
const LISTED: usize = 5;

fn list_gaps(f: &mut fmt::Formatter<'_>, gaps: &[Gap], tf: Timeframe) -> fmt::Result {
    for (i, g) in gaps.iter().take(LISTED).enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        let n = g.bars(tf);
        let s = if n == 1 { "" } else { "s" };
        if g.from_ms == g.to_ms {
            write!(f, "{} ({n} bar{s})", iso(g.from_ms))?;
        } else {
            write!(f, "{} to {} ({n} bar{s})", iso(g.from_ms), iso(g.to_ms))?;
        }
    }
    if gaps.len() > LISTED {
        write!(f, " and {} more", gaps.len() - LISTED)?;
    }
    Ok(())
}

impl fmt::Display for Uncovered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tf = self.timeframe;
        match &self.available {
            None => write!(f, "{} {tf} has no data", self.symbol)?,
            Some(c) => {
                write!(
                    f,
                    "{} {tf} has data from {} to {}",
                    self.symbol,
                    iso(c.first_open_time),
                    iso(c.last_open_time)
                )?;
                match c.gaps.len() {
                    0 => f.write_str(" with no gaps")?,
                    n => {
                        write!(f, " with {n} gap{} (", if n == 1 { "" } else { "s" })?;
                        list_gaps(f, &c.gaps, tf)?;
                        f.write_str(")")?;
                    }
                }
            }
        }
        write!(f, "; the window {} to {} is missing ", iso(self.start_ms), iso(self.end_ms))?;
        list_gaps(f, &self.missing, tf)
    }
}

impl std::error::Error for Uncovered {}

mod timeframe_serde {
    use pipai_engine::bars::Timeframe;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(tf: &Timeframe, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(tf.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timeframe, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipai_engine::time::ymd_ms;

    const M: i64 = 60_000;

    fn times(ranges: &[(i64, i64)]) -> Vec<i64> {
        ranges.iter().flat_map(|&(a, b)| (a..=b).map(|i| i * M)).collect()
    }

    fn cov(ranges: &[(i64, i64)]) -> Coverage {
        Coverage::from_open_times("BTCUSDT", Timeframe::M1, &times(ranges)).unwrap()
    }

    fn gap(a: i64, b: i64) -> Gap {
        Gap { from_ms: a * M, to_ms: b * M }
    }

    #[test]
    fn gaps_from_open_times() {
        let c = cov(&[(0, 4), (6, 6), (10, 12)]);
        assert_eq!((c.first_open_time, c.last_open_time), (0, 12 * M));
        assert_eq!(c.gaps, [gap(5, 5), gap(7, 9)]);
        assert_eq!(c.bar_count(), 9);
        assert_eq!(c.held_ranges(), [0..=4 * M, 6 * M..=6 * M, 10 * M..=12 * M]);
        assert_eq!(cov(&[(3, 3)]).gaps, []);

        let e = |t: &[i64]| Coverage::from_open_times("X", Timeframe::M1, t).unwrap_err();
        assert_eq!(e(&[]), CoverageError::Empty);
        assert!(matches!(e(&[M, M]), CoverageError::NotIncreasing { .. }));
        assert!(matches!(e(&[2 * M, M]), CoverageError::NotIncreasing { .. }));
        assert!(matches!(e(&[1]), CoverageError::Misaligned { .. }));
        assert!(matches!(e(&[0, M + 30_000]), CoverageError::Misaligned { .. }));
        // 4h grid is UTC-aligned: 04:00 is on it, 02:00 is not.
        let h = 3_600_000;
        assert!(Coverage::from_open_times("X", Timeframe::H4, &[ymd_ms(2025, 1, 1) + 4 * h]).is_ok());
        assert!(Coverage::from_open_times("X", Timeframe::H4, &[ymd_ms(2025, 1, 1) + 2 * h]).is_err());
    }

    #[test]
    fn merge_unions_and_keeps_gaps_between() {
        let a = cov(&[(0, 9), (15, 19)]);
        // Adjacent: fills nothing new but joins at the edge.
        let b = cov(&[(20, 29)]);
        let ab = a.merge(&b).unwrap();
        assert_eq!((ab.first_open_time, ab.last_open_time, ab.gaps.clone()), (0, 29 * M, vec![gap(10, 14)]));
        // Disjoint later month: the space between becomes a gap.
        let c = cov(&[(40, 49)]);
        let abc = ab.merge(&c).unwrap();
        assert_eq!(abc.gaps, [gap(10, 14), gap(30, 39)]);
        // Overlap that fills part of a gap, and one that fills a gap exactly.
        let d = cov(&[(8, 12), (30, 39)]);
        let all = abc.merge(&d).unwrap();
        assert_eq!(all.gaps, [gap(13, 14)]);
        assert_eq!(all.bar_count(), 50 - 2);
        // Merge is commutative and idempotent.
        assert_eq!(d.merge(&abc).unwrap(), all);
        assert_eq!(all.merge(&all).unwrap(), all);
        // Earlier data extends the start.
        let early = cov(&[(-5, -3)]);
        let e = all.merge(&early).unwrap();
        assert_eq!((e.first_open_time, e.gaps[0]), (-5 * M, gap(-2, -1)));

        let other = Coverage::from_open_times("ETHUSDT", Timeframe::M1, &[0]).unwrap();
        assert!(matches!(a.merge(&other), Err(CoverageError::Mismatch { .. })));
    }

    #[test]
    fn merge_matches_coverage_of_the_union() {
        // Brute force over small random-ish sets.
        let mut seed = 7u64;
        for _ in 0..200 {
            let mut pick = || {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                matches!((seed >> 33) % 3, 0)
            };
            let a: Vec<i64> = (0..40).filter(|_| pick()).collect();
            let b: Vec<i64> = (0..40).filter(|_| pick()).collect();
            if a.is_empty() || b.is_empty() {
                continue;
            }
            let mut u: Vec<i64> = a.iter().chain(&b).copied().collect();
            u.sort();
            u.dedup();
            let ms = |v: &[i64]| v.iter().map(|i| i * M).collect::<Vec<_>>();
            let ca = Coverage::from_open_times("S", Timeframe::M1, &ms(&a)).unwrap();
            let cb = Coverage::from_open_times("S", Timeframe::M1, &ms(&b)).unwrap();
            let cu = Coverage::from_open_times("S", Timeframe::M1, &ms(&u)).unwrap();
            assert_eq!(ca.merge(&cb).unwrap(), cu);
            assert_eq!(cu.bar_count(), u.len() as i64);
        }
    }

    #[test]
    fn without_cuts_a_range_out() {
        let c = cov(&[(0, 4), (6, 6), (10, 12)]);
        let w = c.without(3 * M, 10 * M).unwrap();
        assert_eq!((w.first_open_time, w.last_open_time, w.gaps), (0, 12 * M, vec![gap(3, 10)]));
        // Bounds between grid points: only 3 is inside [2:00.001, 3:00].
        assert_eq!(c.without(2 * M + 1, 3 * M).unwrap().gaps, [gap(3, 3), gap(5, 5), gap(7, 9)]);
        // The ends move.
        let w = c.without(-5 * M, M).unwrap();
        assert_eq!((w.first_open_time, w.gaps.clone()), (2 * M, vec![gap(5, 5), gap(7, 9)]));
        assert_eq!(c.without(11 * M, i64::MAX).unwrap().last_open_time, 10 * M);
        // A range inside a gap, or outside: unchanged.
        assert_eq!(c.without(7 * M, 9 * M).unwrap(), c);
        assert_eq!(c.without(i64::MIN, -M).unwrap(), c);
        // Everything.
        assert_eq!(c.without(i64::MIN, i64::MAX), None);
        assert_eq!(c.without(0, 12 * M), None);
    }

    #[test]
    fn replace_range_shows_bars_a_reingest_dropped() {
        // Minutes 0..=99 held; a re-ingest of 20..=39 that lacks 26..=29 leaves that gap.
        let old = cov(&[(0, 99)]);
        let written = cov(&[(20, 25), (30, 39)]);
        let new = replace_range(Some(&old), 20 * M, 40 * M - 1, Some(&written)).unwrap().unwrap();
        assert_eq!(new.gaps, [gap(26, 29)]);
        assert_eq!(old.merge(&written).unwrap().gaps, [], "a union would hide it");
        // Idempotent.
        assert_eq!(replace_range(Some(&new), 20 * M, 40 * M - 1, Some(&written)).unwrap().unwrap(), new);
        // Replacing by nothing, into nothing, and everything by nothing.
        assert_eq!(replace_range(Some(&old), 20 * M, 39 * M, None).unwrap().unwrap().gaps, [gap(20, 39)]);
        assert_eq!(replace_range(None, 20 * M, 40 * M, Some(&written)).unwrap(), Some(written.clone()));
        assert_eq!(replace_range(Some(&old), 0, 100 * M, None).unwrap(), None);
        assert_eq!(replace_range(None, 0, 1, None).unwrap(), None);
        // The end of the series can move back: 90..=99 rewritten as 90..=94.
        let shorter = replace_range(Some(&old), 90 * M, 99 * M, Some(&cov(&[(90, 94)]))).unwrap().unwrap();
        assert_eq!((shorter.last_open_time, shorter.gaps), (94 * M, vec![]));

        let err = replace_range(Some(&old), 21 * M, 40 * M, Some(&written)).unwrap_err();
        assert!(matches!(err, CoverageError::OutsideRange { .. }), "{err}");
        let eth = Coverage::from_open_times("ETHUSDT", Timeframe::M1, &[20 * M]).unwrap();
        assert!(matches!(replace_range(Some(&old), 0, 40 * M, Some(&eth)), Err(CoverageError::Mismatch { .. })));
    }

    #[test]
    fn replace_range_matches_set_arithmetic() {
        let mut seed = 11u64;
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            seed >> 33
        };
        for _ in 0..300 {
            let a: Vec<i64> = (0..50).filter(|_| next() % 3 != 0).collect();
            let (f, t) = {
                let (x, y) = ((next() % 50) as i64, (next() % 50) as i64);
                (x.min(y), x.max(y))
            };
            let b: Vec<i64> = (f..=t).filter(|_| next() % 2 == 0).collect();
            let mut expected: Vec<i64> =
                a.iter().copied().filter(|&i| i < f || i > t).chain(b.iter().copied()).collect();
            expected.sort();
            let ms = |v: &[i64]| v.iter().map(|i| i * M).collect::<Vec<_>>();
            let c = |v: &[i64]| Coverage::from_open_times("S", Timeframe::M1, &ms(v)).ok();
            let got = replace_range(c(&a).as_ref(), f * M, t * M, c(&b).as_ref()).unwrap();
            assert_eq!(got, c(&expected), "a={a:?} [{f}, {t}] b={b:?}");
        }
    }

    #[test]
    fn check_windows() {
        let c = cov(&[(0, 4), (6, 6), (10, 12)]);
        assert_eq!(c.check(0, 4 * M), Ok(()));
        // Window bounds between grid points: needs 1..=4 only.
        assert_eq!(c.check(M - 1, 4 * M + 59_999), Ok(()));
        // Shorter than a bar, no grid point inside: nothing needed.
        assert_eq!(c.check(M + 1, M + 2), Ok(()));
        assert_eq!(c.missing(M + 1, M + 2), []);
        // Gaps inside make it uncovered.
        assert_eq!(c.missing(3 * M, 11 * M), [gap(5, 5), gap(7, 9)]);
        // Before the first and after the last bar.
        assert_eq!(c.missing(-3 * M, 2 * M), [gap(-3, -1)]);
        assert_eq!(c.missing(11 * M, 20 * M), [gap(13, 20)]);
        assert_eq!(c.missing(30 * M, 40 * M), [gap(30, 40)]);
        assert!(c.check(3 * M, 11 * M).is_err());
    }

    #[test]
    fn uncovered_says_what_is_held() {
        let day = 1440;
        let t0 = ymd_ms(2024, 1, 1) / M;
        let t_end = ymd_ms(2026, 1, 1) / M - 1;
        let g1 = ymd_ms(2024, 3, 1) / M;
        let g2 = ymd_ms(2025, 6, 1) / M + 7;
        let c = cov(&[(t0, g1 - 1), (g1 + 120, g2 - 1), (g2 + 1, t_end)]);
        assert_eq!(c.gaps.len(), 2);
        let err = c.check(ymd_ms(2023, 12, 31), ymd_ms(2024, 6, 1)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "BTCUSDT 1m has data from 2024-01-01T00:00:00Z to 2025-12-31T23:59:00Z with 2 gaps \
             (2024-03-01T00:00:00Z to 2024-03-01T01:59:00Z (120 bars), 2025-06-01T00:07:00Z (1 bar)); \
             the window 2023-12-31T00:00:00Z to 2024-06-01T00:00:00Z is missing \
             2023-12-31T00:00:00Z to 2023-12-31T23:59:00Z (1440 bars), \
             2024-03-01T00:00:00Z to 2024-03-01T01:59:00Z (120 bars)"
        );
        assert_eq!(err.missing.len(), 2);
        assert!(c.check(ymd_ms(2024, 4, 1), ymd_ms(2025, 5, 31) + (day - 1) * M).is_ok());

        let none = check_window(None, "ETHUSDT", Timeframe::H1, ymd_ms(2025, 1, 1), ymd_ms(2025, 1, 2)).unwrap_err();
        assert_eq!(
            none.to_string(),
            "ETHUSDT 1h has no data; the window 2025-01-01T00:00:00Z to 2025-01-02T00:00:00Z is missing \
             2025-01-01T00:00:00Z to 2025-01-02T00:00:00Z (25 bars)"
        );

        let many = cov(&(0..10).map(|i| (i * 3, i * 3 + 1)).collect::<Vec<_>>());
        let msg = many.check(0, 40 * M).unwrap_err().to_string();
        assert!(msg.contains("with 9 gaps") && msg.contains("and 4 more"), "{msg}");
    }

    #[test]
    fn json_round_trip() {
        let c = cov(&[(0, 4), (6, 6)]);
        let j = c.to_json();
        assert!(std::str::from_utf8(&j).unwrap().contains("\"timeframe\": \"1m\""));
        assert_eq!(Coverage::from_json(&j).unwrap(), c);
        assert!(Coverage::from_json(b"{\"symbol\":\"X\",\"timeframe\":\"2h\"}").is_err());
    }
}
