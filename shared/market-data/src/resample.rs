//! Aggregation of 1m bars into 5m, 15m, 1h, 4h and 1d bars on UTC boundaries.
//!
//! A bucket of timeframe `tf` starts at a multiple of `tf.millis()` since the Unix epoch, which is
//! the UTC grid (1d buckets start at 00:00Z, 4h at 00, 04, .. 20 UTC). A bucket's bar is
//! `open_time` = bucket start, open = first bar's open, high = max high, low = min low,
//! close = last bar's close, volume = sum of volumes (summed in time order, so the result is
//! deterministic).
//!
//! # Missing minutes (partial buckets)
//!
//! A bucket is emitted when **at least one** input bar falls in it, built from the bars that
//! exist; its `open_time` is still the bucket start even when the bucket's first minute is
//! missing. A bucket with no input bar is not emitted (it stays a gap, which
//! [`crate::coverage`] reports). This is what an exchange does with its own higher-timeframe
//! klines across a short outage, and it keeps `resample` a pure function of the bars that exist.
//! Use [`resample_counted`] to learn how many input bars each bucket had, e.g. to flag partial
//! buckets.
//!
//! The input must be sorted by `open_time` (as [`Bars::validate`] requires) and of a timeframe
//! that divides `to` (any finer one of the six works; in practice 1m). Single pass, output
//! allocated once.

use pipai_engine::bars::{Bars, Timeframe};

use crate::columns::BarColumns;

/// Resamples `bars` to `to` (see the module doc for the rules).
pub fn resample(bars: &Bars, to: Timeframe) -> Bars {
    resample_inner(BarColumns::of(bars), to, None)
}

/// [`resample`] of borrowed columns (say one month of a longer series, not copied out).
pub fn resample_columns(bars: BarColumns<'_>, to: Timeframe) -> Bars {
    resample_inner(bars, to, None)
}

/// [`resample`] that also returns, for each output bar, how many input bars it was built from.
pub fn resample_counted(bars: &Bars, to: Timeframe) -> (Bars, Vec<u32>) {
    let mut counts = Vec::new();
    let out = resample_inner(BarColumns::of(bars), to, Some(&mut counts));
    (out, counts)
}

/// [`resample`] of `bars` to each of `tfs` (finest first), the same bars, cheaper: each
/// timeframe that divides the next is aggregated from the one before it (open, high, low and
/// close of a bucket are those of its finer bars'), except the volume, which is summed over
/// `bars` again, in time order, so that it rounds exactly as [`resample`]'s sum does.
pub fn resample_each(bars: BarColumns<'_>, tfs: &[Timeframe]) -> Vec<Bars> {
    let mut out: Vec<Bars> = Vec::with_capacity(tfs.len());
    // For each bar of the last output: the end (exclusive) of the input rows it was built from.
    let mut ends: Vec<usize> = Vec::new();
    for (k, &tf) in tfs.iter().enumerate() {
        let cascade = k > 0 && tf.millis() % tfs[k - 1].millis() == 0;
        let (next, next_ends) = if cascade {
            coarser(&out[k - 1], &ends, bars.volume, tf)
        } else {
            let mut counts = Vec::new();
            let next = resample_inner(bars, tf, Some(&mut counts));
            let ends = counts
                .iter()
                .scan(0usize, |at, &c| {
                    *at += c as usize;
                    Some(*at)
                })
                .collect();
            (next, ends)
        };
        out.push(next);
        ends = next_ends;
    }
    out
}

/// `finer` (bars of a timeframe dividing `to`, the rows of the input before `ends[i]` making
/// bar `i` and those before) aggregated to `to`, the volume summed over `volume` (the input's).
fn coarser(finer: &Bars, ends: &[usize], volume: &[f64], to: Timeframe) -> (Bars, Vec<usize>) {
    let n = finer.len();
    let step = to.millis();
    let t = &finer.open_time;
    let mut out = Bars::with_capacity(n);
    let mut out_ends = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        let start = t[i] - t[i].rem_euclid(step);
        let end = start + step;
        let first = i;
        let (mut h, mut l) = (finer.high[i], finer.low[i]);
        i += 1;
        while i < n && t[i] < end {
            if finer.high[i] > h {
                h = finer.high[i];
            }
            if finer.low[i] < l {
                l = finer.low[i];
            }
            i += 1;
        }
        let rows = if first == 0 { 0 } else { ends[first - 1] }..ends[i - 1];
        let mut v = volume[rows.start];
        for &x in &volume[rows.start + 1..rows.end] {
            v += x;
        }
        out.open_time.push(start);
        out.open.push(finer.open[first]);
        out.high.push(h);
        out.low.push(l);
        out.close.push(finer.close[i - 1]);
        out.volume.push(v);
        out_ends.push(rows.end);
    }
    (out, out_ends)
}

fn resample_inner(bars: BarColumns<'_>, to: Timeframe, mut counts: Option<&mut Vec<u32>>) -> Bars {
    let n = bars.len();
    if n == 0 {
        return Bars::default();
    }
    let step = to.millis();
    let t = bars.open_time;
    let span_buckets = ((t[n - 1] - t[0]) / step + 2) as usize;
    let cap = span_buckets.min(n);
    let mut out = Bars::with_capacity(cap);
    if let Some(c) = counts.as_deref_mut() {
        c.reserve(cap);
    }
    let BarColumns { open, high, low, close, volume, .. } = bars;
    let mut i = 0;
    while i < n {
        let start = t[i] - t[i].rem_euclid(step);
        let end = start + step;
        let first = i;
        let mut h = high[i];
        let mut l = low[i];
        let mut v = volume[i];
        i += 1;
        while i < n && t[i] < end {
            if high[i] > h {
                h = high[i];
            }
            if low[i] < l {
                l = low[i];
            }
            v += volume[i];
            i += 1;
        }
        out.open_time.push(start);
        out.open.push(open[first]);
        out.high.push(h);
        out.low.push(l);
        out.close.push(close[i - 1]);
        out.volume.push(v);
        if let Some(c) = counts.as_deref_mut() {
            c.push((i - first) as u32);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipai_engine::bars::Bar;
    use pipai_engine::time::ymd_ms;

    const M: i64 = 60_000;

    fn b(t: i64, o: f64, h: f64, l: f64, c: f64, v: f64) -> Bar {
        Bar { open_time: t, open: o, high: h, low: l, close: c, volume: v }
    }

    #[test]
    fn five_minutes_with_a_missing_minute() {
        let t0 = ymd_ms(2025, 1, 1);
        let bars = Bars::from_bars(&[
            b(t0, 100.0, 101.0, 99.0, 100.5, 1.0),
            b(t0 + M, 100.5, 103.0, 100.0, 102.0, 2.0),
            // 00:02 missing
            b(t0 + 3 * M, 102.0, 102.5, 98.0, 99.0, 0.5),
            b(t0 + 4 * M, 99.0, 99.5, 98.5, 99.25, 0.25),
            // next bucket: only 00:06 and 00:09 (first minute 00:05 missing)
            b(t0 + 6 * M, 99.25, 100.0, 99.0, 99.75, 3.0),
            b(t0 + 9 * M, 99.75, 99.8, 97.0, 97.5, 4.0),
            // 00:10..00:14 all missing: no bucket; then 00:15
            b(t0 + 15 * M, 97.5, 98.0, 97.5, 97.75, 1.5),
        ]);
        let (r, counts) = resample_counted(&bars, Timeframe::M5);
        let want = Bars::from_bars(&[
            b(t0, 100.0, 103.0, 98.0, 99.25, 3.75),
            b(t0 + 5 * M, 99.25, 100.0, 97.0, 97.5, 7.0),
            b(t0 + 15 * M, 97.5, 98.0, 97.5, 97.75, 1.5),
        ]);
        assert_eq!(r, want);
        assert_eq!(counts, [4, 2, 1]);
        assert_eq!(resample(&bars, Timeframe::M5), want);
        r.validate().unwrap();
    }

    #[test]
    fn day_boundary_splits_buckets() {
        // 23:58, 23:59 on 2024-12-31 and 00:00, 00:01 on 2025-01-01.
        let mid = ymd_ms(2025, 1, 1);
        let bars = Bars::from_bars(&[
            b(mid - 2 * M, 10.0, 11.0, 9.0, 10.5, 1.0),
            b(mid - M, 10.5, 12.0, 10.0, 11.0, 2.0),
            b(mid, 11.0, 11.5, 8.0, 9.0, 4.0),
            b(mid + M, 9.0, 9.5, 8.5, 9.25, 8.0),
        ]);
        for tf in [Timeframe::M15, Timeframe::H1, Timeframe::H4, Timeframe::D1] {
            let r = resample(&bars, tf);
            let want = Bars::from_bars(&[
                b(mid - tf.millis(), 10.0, 12.0, 9.0, 11.0, 3.0),
                b(mid, 11.0, 11.5, 8.0, 9.25, 12.0),
            ]);
            assert_eq!(r, want, "{tf}");
        }
        // 4h buckets: 03:59 and 04:00 fall in different buckets, 00:00 and 03:59 in one.
        let h = 60 * M;
        let bars = Bars::from_bars(&[
            b(mid, 1.0, 1.0, 1.0, 1.0, 1.0),
            b(mid + 4 * h - M, 2.0, 2.0, 2.0, 2.0, 1.0),
            b(mid + 4 * h, 3.0, 3.0, 3.0, 3.0, 1.0),
        ]);
        let r = resample(&bars, Timeframe::H4);
        assert_eq!(r.open_time, [mid, mid + 4 * h]);
        assert_eq!((r.open[0], r.close[0], r.volume[0]), (1.0, 2.0, 2.0));
    }

    #[test]
    fn full_day_to_every_timeframe() {
        let t0 = ymd_ms(2024, 2, 29);
        let bars = crate::generate::generate_1m(3, 100.0, t0, t0 + 2 * 1440 * M);
        for tf in Timeframe::ALL {
            let r = resample(&bars, tf);
            assert_eq!(r.len() as i64, 2 * 1440 * M / tf.millis(), "{tf}");
            r.validate().unwrap();
            assert_eq!(r.open[0], bars.open[0]);
            assert_eq!(*r.close.last().unwrap(), *bars.close.last().unwrap());
            let hi = bars.high.iter().cloned().fold(f64::MIN, f64::max);
            assert_eq!(r.high.iter().cloned().fold(f64::MIN, f64::max), hi);
        }
        assert_eq!(resample(&bars, Timeframe::M1), bars);
        // Resampling in steps equals resampling directly (max/min/first/last exact; sums of
        // volumes may differ in the last bit, so compare those approximately).
        let direct = resample(&bars, Timeframe::H4);
        let stepped = resample(&resample(&bars, Timeframe::M15), Timeframe::H4);
        assert_eq!(direct.high, stepped.high);
        assert_eq!(direct.close, stepped.close);
        for (a, b) in direct.volume.iter().zip(&stepped.volume) {
            assert!((a - b).abs() <= 1e-9 * a.abs());
        }
        assert!(resample(&Bars::default(), Timeframe::H1).is_empty());
    }

    #[test]
    fn each_timeframe_at_once_is_each_resampled() {
        // A month of 1m bars with holes (whole buckets and single minutes missing).
        let all = crate::generate::generate_1m(12, 100.0, ymd_ms(2024, 2, 1), ymd_ms(2024, 3, 1));
        let keep: Vec<Bar> =
            (0..all.len()).filter(|i| i % 97 != 5 && !(3_000..3_400).contains(i)).map(|i| all.get(i)).collect();
        let bars = Bars::from_bars(&keep);
        let tfs = [Timeframe::M5, Timeframe::M15, Timeframe::H1, Timeframe::H4, Timeframe::D1];
        for tfs in [&tfs[..], &tfs[2..], &[Timeframe::M15, Timeframe::M5, Timeframe::D1]] {
            let each = resample_each(BarColumns::of(&bars), tfs);
            for (got, &tf) in each.iter().zip(tfs) {
                let expected = resample(&bars, tf);
                assert_eq!(got.open_time, expected.open_time, "{tf}");
                let bits = |b: &Bars| {
                    [&b.open, &b.high, &b.low, &b.close, &b.volume]
                        .iter()
                        .flat_map(|c| c.iter().map(|x| x.to_bits()))
                        .collect::<Vec<u64>>()
                };
                assert_eq!(bits(got), bits(&expected), "{tf}");
            }
        }
        assert!(resample_each(BarColumns::of(&Bars::default()), &tfs).iter().all(Bars::is_empty));
    }
}
