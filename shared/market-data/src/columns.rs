//! Borrowed columns of bars: a stretch of a [`Bars`] (say one month of a year being ingested)
//! handed to the resampler, the Parquet writer and the coverage without copying it out.

use pipai_engine::bars::Bars;

/// The six columns of consecutive bars, borrowed (all of one length).
#[derive(Debug, Clone, Copy)]
pub struct BarColumns<'a> {
    pub open_time: &'a [i64],
    pub open: &'a [f64],
    pub high: &'a [f64],
    pub low: &'a [f64],
    pub close: &'a [f64],
    pub volume: &'a [f64],
}

impl<'a> BarColumns<'a> {
    /// All of `bars`.
    pub fn of(bars: &'a Bars) -> Self {
        let Bars { open_time, open, high, low, close, volume } = bars;
        BarColumns { open_time, open, high, low, close, volume }
    }

    /// The rows `range` of `bars`.
    pub fn rows(bars: &'a Bars, range: std::ops::Range<usize>) -> Self {
        BarColumns::of(bars).slice(range)
    }

    /// The rows `range` of these.
    pub fn slice(self, range: std::ops::Range<usize>) -> Self {
        BarColumns {
            open_time: &self.open_time[range.clone()],
            open: &self.open[range.clone()],
            high: &self.high[range.clone()],
            low: &self.low[range.clone()],
            close: &self.close[range.clone()],
            volume: &self.volume[range],
        }
    }

    pub fn len(&self) -> usize {
        self.open_time.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open_time.is_empty()
    }

    /// The rows with `start_ms <= open_time <= end_ms` (sorted bars), as [`Bars::window`].
    pub fn window(self, start_ms: i64, end_ms: i64) -> Self {
        let lo = self.open_time.partition_point(|&t| t < start_ms);
        let hi = self.open_time.partition_point(|&t| t <= end_ms);
        self.slice(lo..hi.max(lo))
    }

    /// The five `f64` columns, in file order.
    pub fn floats(&self) -> [&'a [f64]; 5] {
        [self.open, self.high, self.low, self.close, self.volume]
    }

    /// A copy.
    pub fn to_bars(self) -> Bars {
        Bars {
            open_time: self.open_time.to_vec(),
            open: self.open.to_vec(),
            high: self.high.to_vec(),
            low: self.low.to_vec(),
            close: self.close.to_vec(),
            volume: self.volume.to_vec(),
        }
    }
}
