use pipai_engine::*;
use pipai_market_data::generate::Preset;
use std::time::Instant;
fn main() {
    let start = 1_704_067_200_000i64;
    let n = 525_600i64;
    let b = Preset::btcusdt().generate(start, start + n * 60_000);
    let t = |name: &str, f: &mut dyn FnMut()| {
        let mut best = f64::MAX;
        for _ in 0..5 {
            let t0 = Instant::now();
            f();
            best = best.min(t0.elapsed().as_secs_f64());
        }
        println!("{name:<12} {:>8.2} ms", best * 1e3);
    };
    // A full validation pass of its own, for reference: runs check the window's bars in the loop.
    t("validate", &mut || {
        b.validate().unwrap();
    });
    // The indicators alone, into whole flag columns (the loop runs them a block at a time).
    t("ma_signals", &mut || {
        let _ = signals::ma_cross(&b.close, 50, 200, templates::Direction::Long);
    });
    t("brk_signals", &mut || {
        let _ = signals::breakout(&b.high, &b.low, &b.close, 240, templates::Direction::Both);
    });
    let v = sim::BarsView::new(&b, 0..b.len());
    let mut raw = None;
    // The run's single pass: bar check, indicator, simulation, per-bar equity, daily points, drawdown.
    t("loop", &mut || {
        let mut ex = sim::Execution {
            fees: fees::FeeSchedule::fixed(fees::Rates { maker_bps: 5.0, taker_bps: 5.0 }),
            slippage: 0.0,
            leverage: 1.0,
        };
        let ma = signals::MaCross::new(50, 200);
        let sizing = sim::Sizing { fraction: 1.0 };
        let long = templates::Direction::Long;
        raw = Some(sim::signal_loop(v, ma, long, 1e4, sizing, &mut ex, 60_000, &mut NoObserver).unwrap());
    });
    let raw = raw.unwrap();
    t("metrics", &mut || {
        let _ = metrics::compute(1e4, &raw);
    });
    // The equity-curve tracking alone (done inside the loop), over the finished per-bar series.
    t("curve", &mut || {
        let _ = curve::track(1e4, v.open_time, 60_000, &raw.equity);
    });
}
