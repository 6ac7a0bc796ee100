//! OHLCV bars, stored column-wise so the simulation loops read contiguous `f64` slices.

use std::fmt;
use std::str::FromStr;

/// One bar, for building and inspecting; the engine itself works on [`Bars`] columns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    /// UTC milliseconds of the bar's open.
    pub open_time: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

/// Bars of one symbol, sorted by `open_time`, as parallel columns.
///
/// In memory a bar costs 48 bytes (an `i64` time and five `f64`s); the engine's memory target is
/// stated against that figure.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bars {
    pub open_time: Vec<i64>,
    pub open: Vec<f64>,
    pub high: Vec<f64>,
    pub low: Vec<f64>,
    pub close: Vec<f64>,
    pub volume: Vec<f64>,
}

/// Why a series of bars cannot be simulated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BarsError {
    #[error("bar {index}: open_time {time} is not after the previous bar's {previous}")]
    NotIncreasing { index: usize, time: i64, previous: i64 },
    #[error("bar {index} ({time}): {reason}")]
    BadPrice { index: usize, time: i64, reason: &'static str },
    #[error("columns have different lengths")]
    Ragged,
}

impl Bars {
    /// `len` bars of zeros: the output of a parallel decode, each part filled in place.
    pub fn zeroed(len: usize) -> Bars {
        Bars {
            open_time: vec![0; len],
            open: vec![0.0; len],
            high: vec![0.0; len],
            low: vec![0.0; len],
            close: vec![0.0; len],
            volume: vec![0.0; len],
        }
    }

    pub fn with_capacity(n: usize) -> Self {
        Bars {
            open_time: Vec::with_capacity(n),
            open: Vec::with_capacity(n),
            high: Vec::with_capacity(n),
            low: Vec::with_capacity(n),
            close: Vec::with_capacity(n),
            volume: Vec::with_capacity(n),
        }
    }

    pub fn from_bars(bars: &[Bar]) -> Self {
        let mut out = Bars::with_capacity(bars.len());
        for b in bars {
            out.push(*b);
        }
        out
    }

    pub fn push(&mut self, bar: Bar) {
        self.open_time.push(bar.open_time);
        self.open.push(bar.open);
        self.high.push(bar.high);
        self.low.push(bar.low);
        self.close.push(bar.close);
        self.volume.push(bar.volume);
    }

    pub fn len(&self) -> usize {
        self.open_time.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open_time.is_empty()
    }

    pub fn get(&self, i: usize) -> Bar {
        Bar {
            open_time: self.open_time[i],
            open: self.open[i],
            high: self.high[i],
            low: self.low[i],
            close: self.close[i],
            volume: self.volume[i],
        }
    }

    /// Bytes the bars occupy in memory (48 a bar), the yardstick for the memory target.
    pub fn heap_bytes(&self) -> usize {
        self.len() * (8 + 5 * 8)
    }

    /// The index range of the bars with `start_ms <= open_time <= end_ms`.
    pub fn window(&self, start_ms: i64, end_ms: i64) -> std::ops::Range<usize> {
        let lo = self.open_time.partition_point(|&t| t < start_ms);
        let hi = self.open_time.partition_point(|&t| t <= end_ms);
        lo..hi.max(lo)
    }

    /// A copy of the bars in `range`.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Bars {
        Bars {
            open_time: self.open_time[range.clone()].to_vec(),
            open: self.open[range.clone()].to_vec(),
            high: self.high[range.clone()].to_vec(),
            low: self.low[range.clone()].to_vec(),
            close: self.close[range.clone()].to_vec(),
            volume: self.volume[range].to_vec(),
        }
    }

    /// [`BarsError::Ragged`] unless every column has the same length.
    pub fn check_columns(&self) -> Result<(), BarsError> {
        let n = self.len();
        if [self.open.len(), self.high.len(), self.low.len(), self.close.len(), self.volume.len()]
            .iter()
            .any(|&l| l != n)
        {
            return Err(BarsError::Ragged);
        }
        Ok(())
    }

    /// Checks what the simulation relies on: strictly increasing times, finite positive prices,
    /// `low <= open, close <= high`, finite non-negative volume.
    pub fn validate(&self) -> Result<(), BarsError> {
        self.validate_range(0..self.len())
    }

    /// [`Bars::validate`] for the bars in `range` only (indices in errors are the series').
    pub fn validate_range(&self, range: std::ops::Range<usize>) -> Result<(), BarsError> {
        self.check_columns()?;
        for i in range {
            let previous = if i > 0 { Some(self.open_time[i - 1]) } else { None };
            let (o, h, l, c) = (self.open[i], self.high[i], self.low[i], self.close[i]);
            check_bar(i, self.open_time[i], previous, o, h, l, c)?;
            let v = self.volume[i];
            if !(v.is_finite() && v >= 0.0) {
                return Err(BarsError::BadPrice {
                    index: i,
                    time: self.open_time[i],
                    reason: "volume is negative or not a finite number",
                });
            }
        }
        Ok(())
    }
}

/// The time and price rules of [`Bars::validate_range`] for one bar (`previous`: the open time of
/// the bar before it, if any), in the same order and with the same errors. The simulation loops
/// use it to pinpoint a bar their fused check flagged (see `sim::BarCheck`).
#[inline]
pub(crate) fn check_bar(
    index: usize,
    time: i64,
    previous: Option<i64>,
    o: f64,
    h: f64,
    l: f64,
    c: f64,
) -> Result<(), BarsError> {
    if let Some(previous) = previous {
        if time <= previous {
            return Err(BarsError::NotIncreasing { index, time, previous });
        }
    }
    let bad = |reason| Err(BarsError::BadPrice { index, time, reason });
    if !(o.is_finite() && h.is_finite() && l.is_finite() && c.is_finite()) {
        return bad("a price is not a finite number");
    }
    if !(o > 0.0 && h > 0.0 && l > 0.0 && c > 0.0) {
        return bad("a price is not positive");
    }
    if !(l <= o && l <= c && h >= o && h >= c && l <= h) {
        return bad("high/low do not contain open and close");
    }
    Ok(())
}

/// Bar interval. The API accepts exactly these six; serde reads and writes them as `"1m"`...
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum Timeframe {
    M1,
    M5,
    M15,
    H1,
    H4,
    D1,
}

impl Timeframe {
    pub const ALL: [Timeframe; 6] =
        [Timeframe::M1, Timeframe::M5, Timeframe::M15, Timeframe::H1, Timeframe::H4, Timeframe::D1];

    pub fn as_str(self) -> &'static str {
        match self {
            Timeframe::M1 => "1m",
            Timeframe::M5 => "5m",
            Timeframe::M15 => "15m",
            Timeframe::H1 => "1h",
            Timeframe::H4 => "4h",
            Timeframe::D1 => "1d",
        }
    }

    /// Length of one bar in milliseconds.
    pub fn millis(self) -> i64 {
        const MIN: i64 = 60_000;
        match self {
            Timeframe::M1 => MIN,
            Timeframe::M5 => 5 * MIN,
            Timeframe::M15 => 15 * MIN,
            Timeframe::H1 => 60 * MIN,
            Timeframe::H4 => 240 * MIN,
            Timeframe::D1 => 1440 * MIN,
        }
    }
}

impl fmt::Display for Timeframe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Timeframe> for &'static str {
    fn from(tf: Timeframe) -> &'static str {
        tf.as_str()
    }
}

impl TryFrom<String> for Timeframe {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl FromStr for Timeframe {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timeframe::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| {
            format!("unsupported timeframe {}: use one of 1m, 5m, 15m, 1h, 4h, 1d", crate::input::quoted(s))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(t: i64, p: f64) -> Bar {
        Bar { open_time: t, open: p, high: p + 1.0, low: p - 1.0, close: p, volume: 1.0 }
    }

    #[test]
    fn window_is_inclusive_at_both_ends() {
        let bars = Bars::from_bars(&[bar(0, 10.0), bar(60, 10.0), bar(120, 10.0), bar(180, 10.0)]);
        assert_eq!(bars.window(60, 120), 1..3);
        assert_eq!(bars.window(61, 119), 2..2);
        assert_eq!(bars.window(-100, 1000), 0..4);
    }

    #[test]
    fn validate_rejects_unsorted_and_bad_prices() {
        let bars = Bars::from_bars(&[bar(60, 10.0), bar(60, 10.0)]);
        assert!(matches!(bars.validate(), Err(BarsError::NotIncreasing { index: 1, .. })));
        let mut b = bar(0, 10.0);
        b.high = 9.0;
        assert!(matches!(Bars::from_bars(&[b]).validate(), Err(BarsError::BadPrice { index: 0, .. })));
        b = bar(0, 10.0);
        b.close = f64::NAN;
        assert!(Bars::from_bars(&[b]).validate().is_err());
    }

    #[test]
    fn timeframe_round_trips() {
        for tf in Timeframe::ALL {
            assert_eq!(tf.as_str().parse::<Timeframe>().unwrap(), tf);
        }
        assert!("2h".parse::<Timeframe>().unwrap_err().contains("unsupported timeframe"));
    }
}
