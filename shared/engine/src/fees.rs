//! Fee models (`docs/execution-model.md`, "Fill prices, slippage, fees"): the published tables and
//! the per-fill rate lookup, including the rolling 30-day notional that picks a tier.

use rust_decimal::prelude::ToPrimitive;
use std::collections::VecDeque;

use crate::config::{FeeModel, JobConfig};

/// Maker and taker rates in basis points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    pub maker_bps: f64,
    pub taker_bps: f64,
}

/// One tier of `tiered_maker_taker`: applies while the 30-day traded notional is `>= from_notional`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tier {
    pub name: &'static str,
    pub from_notional: f64,
    pub rates: Rates,
}

pub const TIERS: [Tier; 5] = [
    Tier { name: "T0", from_notional: 0.0, rates: Rates { maker_bps: 8.0, taker_bps: 10.0 } },
    Tier { name: "T1", from_notional: 100_000.0, rates: Rates { maker_bps: 6.0, taker_bps: 8.0 } },
    Tier { name: "T2", from_notional: 1_000_000.0, rates: Rates { maker_bps: 4.0, taker_bps: 6.0 } },
    Tier { name: "T3", from_notional: 10_000_000.0, rates: Rates { maker_bps: 2.0, taker_bps: 4.0 } },
    Tier { name: "T4", from_notional: 50_000_000.0, rates: Rates { maker_bps: 0.0, taker_bps: 3.0 } },
];

pub const TIER_WINDOW_MS: i64 = 30 * crate::time::DAY_MS;

/// `match_exchange`: Binance USDⓈ-M perpetual futures, VIP 0 (0.0200% maker, 0.0500% taker), for
/// the USDT-margined symbols. Source and caveats in `docs/execution-model.md`.
pub const VENUE_SCHEDULE: [(&str, Rates); 1] = [("*USDT", Rates { maker_bps: 2.0, taker_bps: 5.0 })];

/// The venue rates for `symbol`, or `None` when the schedule does not cover it.
pub fn venue_rates(symbol: &str) -> Option<Rates> {
    VENUE_SCHEDULE.iter().find_map(|(pattern, rates)| {
        let matches = match pattern.strip_prefix('*') {
            Some(suffix) => symbol.ends_with(suffix) && symbol.len() > suffix.len(),
            None => symbol == *pattern,
        };
        matches.then_some(*rates)
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liquidity {
    Maker,
    Taker,
}

/// Gives the fee rate (a fraction) of each fill, in fill order.
#[derive(Debug, Clone)]
pub struct FeeSchedule {
    fixed: Option<Rates>,
    /// Fills of the last 30 days (time, notional) and their sum, for tiered fees.
    window: VecDeque<(i64, f64)>,
    window_sum: f64,
}

impl FeeSchedule {
    /// The schedule for `config`'s fee model. For `match_exchange`, the first symbol's venue rates
    /// apply (every symbol we accept shares one schedule; see [`VENUE_SCHEDULE`]).
    pub fn for_config(config: &JobConfig) -> FeeSchedule {
        let fixed = match config.fee_model {
            FeeModel::None => Some(Rates { maker_bps: 0.0, taker_bps: 0.0 }),
            FeeModel::FixedBps => {
                let bps = config.fee_bps.and_then(|d| d.to_f64()).unwrap_or(5.0);
                Some(Rates { maker_bps: bps, taker_bps: bps })
            }
            FeeModel::MatchExchange => {
                Some(config.symbols.first().and_then(|s| venue_rates(s)).unwrap_or(VENUE_SCHEDULE[0].1))
            }
            FeeModel::TieredMakerTaker => None,
        };
        FeeSchedule { fixed, window: VecDeque::new(), window_sum: 0.0 }
    }

    pub fn fixed(rates: Rates) -> FeeSchedule {
        FeeSchedule { fixed: Some(rates), window: VecDeque::new(), window_sum: 0.0 }
    }

    pub fn tiered() -> FeeSchedule {
        FeeSchedule { fixed: None, window: VecDeque::new(), window_sum: 0.0 }
    }

    /// The taker rate a market entry at `time` would pay (for sizing), without recording a fill.
    pub fn taker_rate(&mut self, time: i64) -> f64 {
        self.rates_at(time).taker_bps / 10_000.0
    }

    /// The maker rate a limit fill at `time` would pay, without recording a fill.
    pub fn maker_rate(&mut self, time: i64) -> f64 {
        self.rates_at(time).maker_bps / 10_000.0
    }

    /// The fee rate of a fill at `time`, which is then recorded for the 30-day window.
    pub fn rate_for_fill(&mut self, time: i64, notional: f64, liquidity: Liquidity) -> f64 {
        let rates = self.rates_at(time);
        if self.fixed.is_none() {
            self.window.push_back((time, notional));
            self.window_sum += notional;
        }
        match liquidity {
            Liquidity::Maker => rates.maker_bps / 10_000.0,
            Liquidity::Taker => rates.taker_bps / 10_000.0,
        }
    }

    fn rates_at(&mut self, time: i64) -> Rates {
        if let Some(r) = self.fixed {
            return r;
        }
        while let Some(&(t, n)) = self.window.front() {
            if t > time - TIER_WINDOW_MS {
                break;
            }
            self.window.pop_front();
            self.window_sum -= n;
        }
        if self.window.is_empty() {
            // Reset, so float residue of the running sum never accumulates across quiet months.
            self.window_sum = 0.0;
        }
        TIERS.iter().rev().find(|t| self.window_sum >= t.from_notional).unwrap_or(&TIERS[0]).rates
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_follow_the_rolling_30_day_notional() {
        let mut f = FeeSchedule::tiered();
        let day = 86_400_000;
        // First fill: nothing traded before it, T0 taker 10 bps.
        assert_eq!(f.rate_for_fill(0, 60_000.0, Liquidity::Taker), 0.0010);
        // 60k traded: still T0; maker 8 bps.
        assert_eq!(f.rate_for_fill(day, 60_000.0, Liquidity::Maker), 0.0008);
        // 120k in the window: T1 taker 8 bps.
        assert_eq!(f.rate_for_fill(2 * day, 1_000_000.0, Liquidity::Taker), 0.0008);
        // 1.12M: T2.
        assert_eq!(f.rate_for_fill(3 * day, 1.0, Liquidity::Maker), 0.0004);
        // Exactly 30 days after the first fill it has left the window: 1,060,001 still T2.
        assert_eq!(f.rate_for_fill(30 * day, 1.0, Liquidity::Taker), 0.0006);
        // After day 32 only the fills of days 3 and 30 remain (2 quote): T0 again.
        assert_eq!(f.rate_for_fill(32 * day + 1, 1.0, Liquidity::Taker), 0.0010);
    }

    #[test]
    fn venue_schedule_covers_usdt_symbols_only() {
        assert_eq!(venue_rates("BTCUSDT"), Some(Rates { maker_bps: 2.0, taker_bps: 5.0 }));
        assert_eq!(venue_rates("ETHBTC"), None);
        assert_eq!(venue_rates("USDT"), None);
    }
}
