#!/usr/bin/env python3
"""vectorbt cross-check fixtures for the PipAI Backtest engine (crate `pipai-engine`).

Runs the signal templates through vectorbt 1.2.0 with the rules of docs/execution-model.md,
docs/templates.md and docs/metrics.md and writes one JSON fixture per case to fixtures/. Trades,
fills and equity come from vectorbt's own simulation (`vbt.Portfolio.from_signals`); metrics come
from vectorbt's returns/records accessors where vectorbt's definition equals ours, and from numpy
on vectorbt's outputs where it does not (each fixture says which in `metric_sources`).

Run it through run.sh (which sets up the pinned virtualenv). See README.md for the alignment
between vectorbt's defaults and our execution model.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import platform
import sys
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import vectorbt as vbt
from vectorbt.generic import nb as generic_nb

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"
BARS_FILE = "bars_btcusdt_1h.csv"

# Bars: BTCUSDT-like, 1h, every hour of 2024 (a leap year: 366 days * 24 = 8784 bars).
SEED = 20240101
START_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
N_BARS = 8784
START_PRICE = 42000.0
ANNUAL_VOL = 0.60  # crypto-like annualised volatility of the random walk

CAPITAL = 10000.0  # config "capital": "10000"
A = 365  # docs/metrics.md: annualising factor, year = 365 days
MMR = 0.005  # docs/execution-model.md: maintenance margin rate, for the no-liquidation assertion
ENGINE = "numba"  # vectorbt's reference engine; the Rust engine of vectorbt is compared against it

COMMON_CONFIG = {
    "symbols": ["BTCUSDT"],
    "timeframe": "1h",
    "start": "2024-01-01T00:00:00Z",
    "end": "2024-12-31T23:00:00Z",
    "capital": "10000",
    "leverage": 1,
}

CASES = [
    {
        "case": "ma_cross_long",
        "template_id": "tpl_ma_cross",
        "params": {"fast": 12, "slow": 48, "direction": "long"},
        "fee_model": "fixed_bps",
        "fee_bps": "5",
    },
    {
        "case": "ma_cross_both_slippage",
        "template_id": "tpl_ma_cross",
        "params": {"fast": 24, "slow": 96, "direction": "both"},
        "fee_model": "fixed_bps",
        "fee_bps": "10",
        "slippage_bps": "2",
    },
    {
        "case": "breakout_long",
        "template_id": "tpl_breakout",
        "params": {"lookback": 20, "direction": "long"},
        "fee_model": "fixed_bps",
        "fee_bps": "5",
    },
    {
        "case": "breakout_both",
        "template_id": "tpl_breakout",
        "params": {"lookback": 55, "direction": "both"},
        "fee_model": "none",
    },
    {
        "case": "ma_cross_fraction",
        "template_id": "tpl_ma_cross",
        "params": {"fast": 12, "slow": 48, "direction": "long", "fraction": "0.5"},
        "fee_model": "fixed_bps",
        "fee_bps": "5",
    },
]


# --------------------------------------------------------------------------------------------
# Bars
# --------------------------------------------------------------------------------------------


def _fmt2(x: float) -> str:
    return f"{x:.2f}"


def generate_bars(path: Path) -> None:
    """Geometric random walk with fat tails, written as a CSV of plain decimals.

    open[i] = close[i-1] (open[0] = 42000.00); close = open * exp(r), r ~ Student-t(5) scaled to
    60% annualised volatility; high/low extend max/min(open, close) by half-normal wicks; prices
    are rounded to cents (so high >= max(open, close) and low <= min(open, close) hold on the
    rounded values too); volume is log-normal, rounded to 4 decimals, > 0.
    """
    rng = np.random.default_rng(SEED)
    n = N_BARS
    sigma = ANNUAL_VOL / math.sqrt(365 * 24)
    # All draws up front, in a fixed order, so the file depends only on SEED and numpy's PCG64.
    z = rng.standard_t(df=5, size=n) * math.sqrt(3.0 / 5.0)  # unit variance
    drift = rng.normal(0.0, 1.0)  # one draw for the year's drift, in units of sigma * 0.02
    wick_up = np.abs(rng.normal(0.0, sigma * 0.6, size=n))
    wick_dn = np.abs(rng.normal(0.0, sigma * 0.6, size=n))
    volume = rng.lognormal(mean=math.log(900.0), sigma=0.6, size=n)
    mu = drift * sigma * 0.02 - 0.5 * sigma * sigma

    rows = []
    prev_close = _fmt2(START_PRICE)
    for i in range(n):
        o_s = prev_close
        o = float(o_s)
        c_s = _fmt2(o * math.exp(mu + sigma * z[i]))
        c = float(c_s)
        h_s = _fmt2(max(o, c) * (1.0 + wick_up[i]))
        if float(h_s) < max(o, c):
            h_s = o_s if o >= c else c_s
        l_s = _fmt2(min(o, c) * (1.0 - wick_dn[i]))
        if float(l_s) > min(o, c):
            l_s = o_s if o <= c else c_s
        v_s = f"{max(volume[i], 0.0001):.4f}"
        rows.append((START_MS + i * HOUR_MS, o_s, h_s, l_s, c_s, v_s))
        prev_close = c_s

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["open_time", "open", "high", "low", "close", "volume"])
        w.writerows(rows)


def read_bars(path: Path) -> pd.DataFrame:
    """Parse the CSV with Python's float() (correctly rounded, like Rust's str::parse::<f64>)."""
    with path.open(newline="") as f:
        r = csv.reader(f)
        header = next(r)
        if header != ["open_time", "open", "high", "low", "close", "volume"]:
            raise SystemExit(f"{path}: unexpected header {header}")
        rows = [(int(t), float(o), float(h), float(lo), float(c), float(v)) for t, o, h, lo, c, v in r]
    df = pd.DataFrame(rows, columns=["open_time", "open", "high", "low", "close", "volume"])
    t = df["open_time"].to_numpy()
    o, h, lo, c, v = (df[k].to_numpy() for k in ["open", "high", "low", "close", "volume"])
    checks = {
        "1h grid from 2024-01-01T00:00Z": len(t) == N_BARS and bool(np.all(t == START_MS + np.arange(len(t)) * HOUR_MS)),
        "open = previous close": bool(np.all(o[1:] == c[:-1])),
        "high >= max(open, close)": bool(np.all(h >= np.maximum(o, c))),
        "low <= min(open, close)": bool(np.all(lo <= np.minimum(o, c))),
        "prices > 0": bool(np.all(lo > 0)),
        "volume > 0": bool(np.all(v > 0)),
    }
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        raise SystemExit(f"{path}: bars fail {bad}")
    return df


# --------------------------------------------------------------------------------------------
# Signals (docs/templates.md), computed on bar i's close
# --------------------------------------------------------------------------------------------


def sma_doc(close: np.ndarray, w: int) -> np.ndarray:
    """docs/templates.md: sma_w[i] = (C[i] - C[i-w]) / w, C = running sum (C[-1] = 0), from i = w-1."""
    c = np.cumsum(close)  # np.add.accumulate: strictly sequential, like a Rust running sum
    out = np.full(close.shape, np.nan)
    out[w - 1] = (c[w - 1] - 0.0) / w
    out[w:] = (c[w:] - c[:-w]) / w
    return out


def crossed_above_doc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a[i] > b[i] and a[i-1] <= b[i-1], all four defined."""
    out = np.zeros(a.shape, dtype=bool)
    ok = ~np.isnan(a) & ~np.isnan(b)
    with np.errstate(invalid="ignore"):
        out[1:] = ok[1:] & ok[:-1] & (a[1:] > b[1:]) & (a[:-1] <= b[:-1])
    return out


def ma_cross_signals(close: np.ndarray, fast: int, slow: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """(cross above, cross below), from vectorbt's MA indicator, checked against the doc formula."""
    idx = pd.RangeIndex(len(close))
    close_sr = pd.Series(close, index=idx)
    fast_ma = vbt.MA.run(close_sr, window=fast, ewm=False, short_name="fast")
    slow_ma = vbt.MA.run(close_sr, window=slow, ewm=False, short_name="slow")
    vbt_fast = fast_ma.ma.to_numpy()
    vbt_slow = slow_ma.ma.to_numpy()
    vbt_up = fast_ma.ma_crossed_above(slow_ma).to_numpy()
    vbt_dn = fast_ma.ma_crossed_below(slow_ma).to_numpy()

    doc_fast = sma_doc(close, fast)
    doc_slow = sma_doc(close, slow)
    doc_up = crossed_above_doc(doc_fast, doc_slow)
    doc_dn = crossed_above_doc(doc_slow, doc_fast)

    # vbt.MA (rolling_mean_nb: running sum, (C[i] - C[i-w]) / w) is the doc's formula bit for bit.
    if not (np.array_equal(vbt_fast, doc_fast, equal_nan=True) and np.array_equal(vbt_slow, doc_slow, equal_nan=True)):
        raise SystemExit("vbt.MA differs from the docs/templates.md SMA formula; refusing to guess")
    # vectorbt's crossed_above needs a strictly-below bar since the series became defined; ours only
    # needs fast[i-1] <= slow[i-1]. They can differ only around exact equality; the doc wins.
    n_diff = int(np.sum(vbt_up != doc_up) + np.sum(vbt_dn != doc_dn))
    equal_bars = int(np.sum(doc_fast == doc_slow))
    info = {
        "ma": "vbt.MA.run(close, window=w, ewm=False).ma (asserted bit-identical to (C[i]-C[i-w])/w)",
        "cross": (
            "docs/templates.md crossing (fast[i] > slow[i] and fast[i-1] <= slow[i-1]) on the vbt.MA "
            f"values; vbt ma_crossed_above/below disagree on {n_diff} bars (bars with fast == slow: {equal_bars})"
        ),
    }
    return doc_up, doc_dn, info


def breakout_signals(high: np.ndarray, low: np.ndarray, close: np.ndarray, lookback: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """(close > upper, close < lower) with upper/lower = Donchian channel of the previous `lookback` bars."""
    n = len(close)
    vbt_upper = np.full(n, np.nan)
    vbt_lower = np.full(n, np.nan)
    vbt_upper[1:] = generic_nb.rolling_max_1d_nb(high, lookback, minp=lookback)[:-1]
    vbt_lower[1:] = generic_nb.rolling_min_1d_nb(low, lookback, minp=lookback)[:-1]

    doc_upper = np.full(n, np.nan)
    doc_lower = np.full(n, np.nan)
    win_h = np.lib.stride_tricks.sliding_window_view(high, lookback)  # win_h[k] = high[k .. k+lookback-1]
    win_l = np.lib.stride_tricks.sliding_window_view(low, lookback)
    doc_upper[lookback:] = win_h.max(axis=1)[: n - lookback]  # upper[i] = max(high[i-lookback .. i-1])
    doc_lower[lookback:] = win_l.min(axis=1)[: n - lookback]
    if not (np.array_equal(vbt_upper, doc_upper, equal_nan=True) and np.array_equal(vbt_lower, doc_lower, equal_nan=True)):
        raise SystemExit("vectorbt rolling max/min differs from the Donchian formula")
    with np.errstate(invalid="ignore"):
        above = close > vbt_upper  # NaN compares False: nothing before i = lookback
        below = close < vbt_lower
    info = {
        "channel": "vectorbt.generic.nb.rolling_max_1d_nb(high, lookback) / rolling_min_1d_nb(low, lookback) "
        "shifted by one bar (asserted equal to max/min of bars i-lookback .. i-1)",
        "cross": "close[i] > upper[i] / close[i] < lower[i]",
    }
    return above, below, info


# --------------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------------


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def direction_arrays(direction: str, up: np.ndarray, dn: np.ndarray, long_entry_exit: tuple[np.ndarray, np.ndarray], short_entry_exit: tuple[np.ndarray, np.ndarray]):
    """Map template signals to vectorbt's (entries, exits, short_entries, short_exits), per bar i."""
    f = np.zeros_like(up)
    if direction == "long":
        return long_entry_exit[0], long_entry_exit[1], f, f
    if direction == "short":
        return f, f, short_entry_exit[0], short_entry_exit[1]
    if direction == "both":
        # Long on `up`, short on `dn`; no plain exits: an opposite signal reverses.
        return up, f, dn, f
    raise ValueError(direction)


def shift_to_fill_bars(sig: np.ndarray, n: int) -> np.ndarray:
    """Signal on bar i's close -> order on row i+1 (filled at bar i+1's open).

    Output has n+1 rows: rows 0..n-1 are the real bars, row n is the synthetic end-of-window row.
    A signal on the last real bar (row n-1) would land on row n and is dropped (it never fills).
    """
    out = np.zeros(n + 1, dtype=bool)
    out[1:n] = sig[: n - 1]
    return out


def expected_fill_rows(le, lx, se, sx) -> list[int]:
    """Rows at which docs/execution-model.md's position logic fills an order (position sign only).

    Used only to assert that vectorbt's signal handling (ignore entries while in position, ignore
    exits while flat, reverse on an opposite entry) produced exactly these fills."""
    pos = 0
    rows = []
    for j in range(len(le)):
        new_pos = pos
        if pos == 0:
            new_pos = 1 if le[j] else (-1 if se[j] else 0)
        elif pos > 0:
            new_pos = -1 if se[j] else (0 if lx[j] else 1)
        else:
            new_pos = 1 if le[j] else (0 if sx[j] else -1)
        if new_pos != pos:
            rows.append(j)
            pos = new_pos
    return rows


def run_case(case: dict, bars: pd.DataFrame) -> dict:
    name = case["case"]
    params = case["params"]
    direction = params.get("direction", "long")
    fraction = Fraction(params.get("fraction", "1"))
    fee_rate = int(case["fee_bps"]) / 10000 if case["fee_model"] == "fixed_bps" else 0.0
    slippage = int(case["slippage_bps"]) / 10000 if "slippage_bps" in case else 0.0

    t_ms = bars["open_time"].to_numpy().astype(np.int64)
    o = bars["open"].to_numpy()
    h = bars["high"].to_numpy()
    lo = bars["low"].to_numpy()
    c = bars["close"].to_numpy()
    n = len(c)

    # ---- signals on bar i's close
    if case["template_id"] == "tpl_ma_cross":
        up, dn, sig_info = ma_cross_signals(c, params["fast"], params["slow"])
        long_ee = (up, dn)  # long: enter on cross above, exit on cross below
        short_ee = (dn, up)  # short: enter on cross below, exit on cross above
    elif case["template_id"] == "tpl_breakout":
        up, dn, sig_info = breakout_signals(h, lo, c, params["lookback"])
        long_ee = (up, dn)  # long: enter close > upper, exit close < lower
        short_ee = (dn, up)  # short: enter close < lower, exit close > upper
    else:
        raise ValueError(case["template_id"])
    le, lx, se, sx = (shift_to_fill_bars(a, n) for a in direction_arrays(direction, up, dn, long_ee, short_ee))

    # ---- end of window: a synthetic row n, stamped at the last bar's close time, whose order price
    # is the last close. Both exits are forced there, nothing enters; the position (if any) is closed
    # with slippage and the fee like any other market fill.
    lx[n] = True
    sx[n] = True
    le[n] = False
    se[n] = False
    index = pd.DatetimeIndex(pd.to_datetime(np.append(t_ms, t_ms[-1] + HOUR_MS), unit="ms", utc=True))
    close_ext = pd.Series(np.append(c, c[-1]), index=index)  # valuation (equity) at each bar's close
    price_ext = pd.Series(np.append(o, c[-1]), index=index)  # fills at the open; row n at the last close

    if fraction == 1:
        size, size_type = np.inf, "amount"  # spend all cash, fee included
    else:
        if direction != "long":
            raise SystemExit(f"{name}: SizeType.Percent cannot reverse positions in vectorbt; fraction < 1 needs direction long")
        size, size_type = float(fraction), "percent"  # percent of cash, fee included

    sim_kwargs = dict(
        close=close_ext,
        entries=pd.Series(le, index=index),
        exits=pd.Series(lx, index=index),
        short_entries=pd.Series(se, index=index),
        short_exits=pd.Series(sx, index=index),
        price=price_ext,
        size=size,
        size_type=size_type,
        fees=fee_rate,
        fixed_fees=0.0,
        slippage=slippage,
        min_size=0.0,
        max_size=np.inf,
        size_granularity=np.nan,
        init_cash=CAPITAL,
        lock_cash=False,
        allow_partial=True,
        raise_reject=True,
        accumulate=False,
        upon_long_conflict="ignore",
        upon_short_conflict="ignore",
        upon_dir_conflict="ignore",
        upon_opposite_entry="reverse",
        use_stops=False,
        freq="1h",
    )
    pf = vbt.Portfolio.from_signals(**sim_kwargs, engine=ENGINE)

    orders = pf.orders.values
    value = pf.value().to_numpy()  # n+1 rows
    cash = pf.cash().to_numpy()
    assets = pf.assets().to_numpy()
    final_equity = float(value[-1])

    # ---- sanity: vectorbt filled exactly the orders our rules call for, fully, and ended flat
    want_rows = expected_fill_rows(le, lx, se, sx)
    if list(orders["idx"]) != want_rows:
        raise SystemExit(f"{name}: vectorbt fills at rows {list(orders['idx'])[:10]}..., expected {want_rows[:10]}...")
    if assets[-1] != 0.0:
        raise SystemExit(f"{name}: position not flat after the end-of-window close")
    # ---- sanity: no liquidation would have happened in our model (vectorbt has none)
    for t in range(n):
        q = assets[t]
        if q > 0 and cash[t] < 0 and lo[t] <= -cash[t] / (q * (1 - MMR)):
            raise SystemExit(f"{name}: long would be liquidated at bar {t}")
        if q < 0 and h[t] >= cash[t] / (-q * (1 + MMR)):
            raise SystemExit(f"{name}: short would be liquidated at bar {t}")

    # ---- vectorbt's own Rust engine must agree with its Numba engine
    engine_check = "vectorbt-rust not importable; skipped"
    try:
        import vectorbt_rust  # noqa: F401

        pf_rs = vbt.Portfolio.from_signals(**sim_kwargs, engine="rust")
        o_rs = pf_rs.orders.values
        same = (
            len(o_rs) == len(orders)
            and np.array_equal(o_rs["idx"], orders["idx"])
            and np.array_equal(o_rs["side"], orders["side"])
            and np.allclose(o_rs["size"], orders["size"], rtol=1e-12, atol=0)
            and np.allclose(o_rs["price"], orders["price"], rtol=1e-12, atol=0)
            and np.allclose(o_rs["fees"], orders["fees"], rtol=1e-12, atol=0)
            and math.isclose(float(pf_rs.value().iloc[-1]), final_equity, rel_tol=1e-12)
        )
        if not same:
            raise SystemExit(f"{name}: vectorbt engine='rust' and engine='numba' disagree")
        engine_check = f"engine='rust' agrees with engine='numba' ({len(orders)} orders, rtol 1e-12)"
    except ImportError:
        pass

    # ---- trades: vectorbt positions (one record per round trip; reversal orders are split, the fee
    # pro rata to size)
    pos = pf.positions
    precs = pos.values
    exit_trades = pf.exit_trades.values
    if len(exit_trades) != len(precs):
        raise SystemExit(f"{name}: exit trades != positions (accumulation?)")
    if np.any(precs["status"] != 1):
        raise SystemExit(f"{name}: open position records after the end-of-window close")
    t_ext = np.append(t_ms, t_ms[-1] + HOUR_MS)
    # Prices: the fill price of vectorbt's order record at the entry/exit row (price * (1 +/- slippage)).
    # The position record holds the same number as size*price/size, which can be 1 ulp off.
    fill_price = dict(zip(orders["idx"].tolist(), orders["price"].tolist()))
    trades = []
    for r in precs:
        entry_px = fill_price[int(r["entry_idx"])]
        exit_px = fill_price[int(r["exit_idx"])]
        if not (math.isclose(entry_px, r["entry_price"], rel_tol=1e-14) and math.isclose(exit_px, r["exit_price"], rel_tol=1e-14)):
            raise SystemExit(f"{name}: position prices differ from the order fill prices")
        trades.append(
            {
                "side": "buy" if r["direction"] == 0 else "sell",
                "entry_time": iso(int(t_ext[r["entry_idx"]])),
                "entry_price": entry_px,
                "exit_time": iso(int(t_ext[r["exit_idx"]])),
                "exit_price": exit_px,
                "qty": float(r["size"]),
                "pnl": float(r["pnl"]),
                "fee": float(r["entry_fees"] + r["exit_fees"]),
                "exit_reason": "end_of_window" if r["exit_idx"] == n else "signal",
            }
        )
    pnl_sum = math.fsum(float(r["pnl"]) for r in precs)
    if not math.isclose(CAPITAL + pnl_sum, final_equity, rel_tol=1e-10):
        raise SystemExit(f"{name}: capital + sum(pnl) = {CAPITAL + pnl_sum} != final equity {final_equity}")

    # ---- equity series in our model's terms
    # per-bar equity e_t at each real bar's close; the last one is after the end-of-window close
    per_bar = value[:n].copy()
    per_bar[n - 1] = final_equity
    per_bar_sr = pd.Series(per_bar, index=index[:n])
    # daily: the close of each UTC day's last bar
    day = t_ms // DAY_MS
    last_of_day = np.flatnonzero(np.append(day[1:] != day[:-1], True))
    daily_E = per_bar[last_of_day]
    daily_index = pd.DatetimeIndex(pd.to_datetime(day[last_of_day] * DAY_MS, unit="ms", utc=True))
    daily_sr = pd.Series(daily_E, index=daily_index)
    equity_curve = [[iso(int(d * DAY_MS)), float(e)] for d, e in zip(day[last_of_day], daily_E)]

    metrics, sources = compute_metrics(pf, precs, orders, per_bar_sr, daily_sr, n)

    config = {"template_id": case["template_id"], "params": params, **COMMON_CONFIG, "fee_model": case["fee_model"]}
    if "fee_bps" in case:
        config["fee_bps"] = case["fee_bps"]
    if "slippage_bps" in case:
        config["slippage_bps"] = case["slippage_bps"]

    vbt_call = (
        "vbt.Portfolio.from_signals(close=<close + [last close]>, entries, exits, short_entries, short_exits "
        "(signals shifted one bar; row n forces both exits), price=<open + [last close]>, "
        f"size={'np.inf' if size_type == 'amount' else size}, size_type='{size_type}', fees={fee_rate!r}, "
        f"slippage={slippage!r}, init_cash={CAPITAL!r}, accumulate=False, upon_opposite_entry='reverse', "
        f"lock_cash=False, min_size=0.0, raise_reject=True, use_stops=False, freq='1h', engine='{ENGINE}')"
    )
    return {
        "case": name,
        "bars_file": BARS_FILE,
        "config": config,
        "expected": {
            "final_equity": final_equity,
            "trades": trades,
            "equity_curve": equity_curve,
            "metrics": metrics,
            "metric_sources": sources,
        },
        "vectorbt": {"call": vbt_call, "signals": sig_info, "engine_check": engine_check},
        "generated_with": {
            "vectorbt": vbt.__version__,
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "python": platform.python_version(),
            "numba": __import__("numba").__version__,
        },
    }


# --------------------------------------------------------------------------------------------
# Metrics (docs/metrics.md)
# --------------------------------------------------------------------------------------------


def _f(x) -> float | None:
    x = float(x)
    if not math.isfinite(x):
        raise SystemExit(f"non-finite metric {x} where docs/metrics.md expects a number")
    return x


def compute_metrics(pf, precs, orders, per_bar_sr: pd.Series, daily_sr: pd.Series, n: int):
    m: dict = {}
    s: dict = {}
    D = len(daily_sr)
    E = daily_sr.to_numpy()
    E_final = float(E[-1])

    # Daily returns, E_{-1} = capital, A = 365: vectorbt's returns accessor on the daily equity.
    rets_acc = pd.Series.vbt.returns.from_value(daily_sr, init_value=CAPITAL, freq="1D", year_freq="365 days")
    r = rets_acc.obj.to_numpy()
    # numpy reference of the same returns, to make sure nothing differs beyond rounding
    r_doc = E / np.append(CAPITAL, E[:-1]) - 1
    if not np.allclose(r, r_doc, rtol=0, atol=1e-15):
        raise SystemExit("vectorbt daily returns differ from E_d / E_{d-1} - 1")
    if rets_acc.ann_factor != A:
        raise SystemExit(f"ann_factor {rets_acc.ann_factor} != {A}")
    RET = "vectorbt: pd.Series.vbt.returns.from_value(daily_equity, init_value=capital, freq='1D', year_freq='365 days')"

    std = float(np.std(r, ddof=1)) if D >= 2 else 0.0
    m["sharpe"] = _f(rets_acc.sharpe_ratio(risk_free=0.0, ddof=1)) if D >= 2 and std != 0 else None
    s["sharpe"] = RET + ".sharpe_ratio(risk_free=0, ddof=1) = mean(r)/std(r, ddof=1)*sqrt(365)"

    dd_dev = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    m["sortino"] = _f(rets_acc.sortino_ratio(required_return=0.0)) if dd_dev != 0 else None
    s["sortino"] = (
        RET + ".sortino_ratio(required_return=0) = mean(r)*365 / (sqrt(mean(min(r,0)^2))*sqrt(365)), "
        "the mean of squares over all D days as in docs/metrics.md"
    )

    # Per-bar max drawdown with peak_t = max(capital, e_0 .. e_t).
    bar_acc = pd.Series.vbt.returns.from_value(per_bar_sr, init_value=CAPITAL, freq="1h", year_freq="365 days")
    mdd_vbt = float(bar_acc.max_drawdown())
    e = per_bar_sr.to_numpy()
    peak = np.maximum.accumulate(np.append(CAPITAL, e))[1:]
    mdd_doc = float(np.min(e / peak - 1))
    if e[0] >= CAPITAL:
        # vectorbt's drawdown starts its running peak at e_0 (not at the capital); equal when e_0 >= capital
        if not math.isclose(mdd_vbt, mdd_doc, rel_tol=1e-9, abs_tol=1e-15):
            raise SystemExit(f"max drawdown: vectorbt {mdd_vbt} vs doc {mdd_doc}")
        m["max_drawdown"] = mdd_vbt
        s["max_drawdown"] = (
            "vectorbt: pd.Series.vbt.returns.from_value(per_bar_equity, init_value=capital, freq='1h').max_drawdown() "
            "(per-bar equity at each close, last bar after the end-of-window close; e_0 == capital so vectorbt's "
            "running peak equals max(capital, e_0..e_t))"
        )
    else:
        m["max_drawdown"] = mdd_doc
        s["max_drawdown"] = "numpy: min(e_t / max(capital, e_0..e_t) - 1); e_0 < capital, which vectorbt's peak ignores"
    m["max_drawdown"] = m["max_drawdown"] if m["max_drawdown"] != 0 else 0.0

    cagr = _f(rets_acc.annualized()) if E_final > 0 else -1.0
    m["cagr"] = cagr
    s["cagr"] = RET + ".annualized() = prod(1+r)^(365/D) - 1 = (E_final/capital)^(365/D) - 1"

    m["calmar"] = cagr / abs(m["max_drawdown"]) if m["max_drawdown"] != 0 else None
    s["calmar"] = (
        "vectorbt ReturnsAccessor.annualized() (daily, above) / abs(per-bar max_drawdown above): vectorbt's calmar_ratio() "
        "divides by the drawdown of the daily series, ours by the per-bar one"
    )

    nt = len(precs)
    pnl = precs["pnl"]
    wins = pnl[pnl > 0]
    losses = pnl[pnl < 0]
    pos = pf.positions
    m["total_trades"] = int(pos.count())
    s["total_trades"] = "vectorbt: pf.positions.count() (closed round trips, incl. the end-of-window close)"
    m["win_rate"] = _f(pos.win_rate()) if nt else None
    s["win_rate"] = "vectorbt: pf.positions.win_rate() = count(pnl > 0) / count"
    m["profit_factor"] = _f(pos.profit_factor()) if len(losses) else None
    s["profit_factor"] = "vectorbt: pf.positions.profit_factor() = sum(pnl > 0) / abs(sum(pnl < 0))"
    m["expected_value"] = _f(pos.pnl.mean()) if nt else None
    s["expected_value"] = "vectorbt: pf.positions.pnl.mean() (vectorbt's expectancy() is the same number but is not used)"
    if nt:
        dur_bars = pos.values["exit_idx"] - pos.values["entry_idx"]  # = pf.positions.duration (rows are 1h apart)
        mean_s = Fraction(int(dur_bars.sum()) * 3600, nt)
        m["avg_trade_duration_seconds"] = int(round(mean_s))  # Fraction rounds half to even
    else:
        m["avg_trade_duration_seconds"] = None
    s["avg_trade_duration_seconds"] = (
        "vectorbt: pf.positions duration (exit_idx - entry_idx, in 1h rows; the end-of-window exit row is stamped "
        "last open_time + 1h) * 3600, mean rounded half-to-even with exact integer arithmetic"
    )

    m["total_return"] = _f(pf.total_return())
    s["total_return"] = "vectorbt: pf.total_return() = final value / init_cash - 1"

    m["bars_in_market"] = int(pf.position_mask().to_numpy()[:n].sum())
    s["bars_in_market"] = "vectorbt: pf.position_mask()[:n].sum() (position after each real bar's fills, i.e. at its close)"

    m["volatility_annualised"] = _f(rets_acc.annualized_volatility(ddof=1)) if D >= 2 else None
    s["volatility_annualised"] = RET + ".annualized_volatility(ddof=1) = std(r, ddof=1)*sqrt(365)"

    for level, cutoff in (("95", 0.05), ("99", 0.01)):
        var_vbt = float(rets_acc.value_at_risk(cutoff=cutoff))
        var_np = float(np.percentile(r, cutoff * 100, method="linear"))
        if var_vbt != var_np and not math.isclose(var_vbt, var_np, rel_tol=1e-12, abs_tol=1e-18):
            raise SystemExit(f"var_{level}: vectorbt {var_vbt} vs numpy {var_np}")
        m[f"var_{level}"] = var_vbt if D >= 1 else None
        s[f"var_{level}"] = RET + f".value_at_risk(cutoff={cutoff}) = np.percentile(r, {cutoff * 100:g}) (linear interpolation)"
        cvar_vbt = float(rets_acc.cond_value_at_risk(cutoff=cutoff))
        cvar_doc = float(np.mean(r[r <= var_vbt])) if D >= 1 else None
        m[f"cvar_{level}"] = cvar_doc
        same = "equal here" if cvar_doc is not None and math.isclose(cvar_vbt, cvar_doc, rel_tol=1e-12) else f"differs here: {cvar_vbt!r}"
        s[f"cvar_{level}"] = (
            f"numpy: mean(r[r <= var_{level}]); vectorbt's cond_value_at_risk averages the int((D-1)*{cutoff})+1 "
            f"smallest returns instead, which differs when returns tie around the quantile ({same})"
        )

    m["avg_win"] = _f(pos.winning.pnl.mean()) if len(wins) else None
    s["avg_win"] = "vectorbt: pf.positions.winning.pnl.mean()"
    m["avg_loss"] = _f(pos.losing.pnl.mean()) if len(losses) else None
    s["avg_loss"] = "vectorbt: pf.positions.losing.pnl.mean()"
    m["expectancy"] = _f(pos.returns.mean()) if nt else None
    s["expectancy"] = "vectorbt: pf.positions.returns.mean(); vectorbt's trade return = pnl / (size * entry_price)"

    # Max drawdown duration on the per-bar equity: vectorbt's drawdown records. A peak is the last bar
    # at the running maximum before the decline (ties move the peak forward); recovery is the first
    # close >= peak; a drawdown still open at the end runs to the last bar's close.
    dd = per_bar_sr.vbt.drawdowns.values
    if e[0] < CAPITAL:
        raise SystemExit("max_drawdown_duration: e_0 < capital is not covered by vectorbt's drawdown records")
    m["max_drawdown_duration"] = int(np.max(dd["end_idx"] - dd["peak_idx"]) * 3600) if len(dd) else 0
    s["max_drawdown_duration"] = (
        "vectorbt: per_bar_equity.vbt.drawdowns records, max(end_idx - peak_idx) * 3600 (peak = last bar at the "
        "running max before the drop; end = first close >= peak, or the last bar if never regained)"
    )

    notional = float(np.sum(np.abs(orders["size"]) * orders["price"]))
    mean_E = float(np.mean(E))
    m["turnover_annualised"] = notional / mean_E * A / D if mean_E != 0 else None
    s["turnover_annualised"] = (
        "numpy on vectorbt's order records: sum(size * price) / mean(daily equity) * 365 / D (vectorbt has no "
        "turnover metric; a reversal is one vectorbt order whose size is close + open, same notional)"
    )

    order = [
        "sharpe", "sortino", "calmar", "max_drawdown", "win_rate", "profit_factor", "cagr", "expected_value",
        "total_trades", "avg_trade_duration_seconds", "total_return", "volatility_annualised", "var_95", "cvar_95",
        "var_99", "cvar_99", "avg_win", "avg_loss", "expectancy", "bars_in_market", "max_drawdown_duration",
        "turnover_annualised",
    ]
    return {k: m[k] for k in order}, {k: s[k] for k in order}


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def _j(x) -> str:
    return json.dumps(x, allow_nan=False, ensure_ascii=False)


def write_fixture(path: Path, fx: dict) -> None:
    """Stable, diff-friendly JSON: one trade / equity point / metric per line, floats as repr."""
    ex = fx["expected"]
    lines = ["{"]
    lines.append(f' "case": {_j(fx["case"])},')
    lines.append(f' "bars_file": {_j(fx["bars_file"])},')
    lines.append(f' "config": {_j(fx["config"])},')
    lines.append(' "expected": {')
    lines.append(f'  "final_equity": {_j(ex["final_equity"])},')
    if ex["trades"]:
        lines.append('  "trades": [')
        lines.append(",\n".join("   " + _j(t) for t in ex["trades"]))
        lines.append("  ],")
    else:
        lines.append('  "trades": [],')
    lines.append('  "equity_curve": [')
    lines.append(",\n".join("   " + _j(p) for p in ex["equity_curve"]))
    lines.append("  ],")
    for key in ("metrics", "metric_sources"):
        lines.append(f'  "{key}": {{')
        lines.append(",\n".join(f"   {_j(k)}: {_j(v)}" for k, v in ex[key].items()))
        lines.append("  }" + ("," if key == "metrics" else ""))
    lines.append(" },")
    lines.append(f' "vectorbt": {_j(fx["vectorbt"])},')
    lines.append(f' "generated_with": {_j(fx["generated_with"])}')
    lines.append("}")
    text = "\n".join(lines) + "\n"
    json.loads(text)  # well-formed
    path.write_text(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--regenerate-bars", action="store_true", help="rewrite fixtures/bars_btcusdt_1h.csv from the seed")
    ap.add_argument("--case", action="append", help="only these cases (default: all)")
    args = ap.parse_args()

    vbt.settings["engine"] = ENGINE  # indicators and accessors too, not only the simulation
    bars_path = FIXTURES / BARS_FILE
    if args.regenerate_bars or not bars_path.exists():
        generate_bars(bars_path)
        print(f"wrote {bars_path.relative_to(HERE)} (seed {SEED})")
    bars = read_bars(bars_path)
    c = bars["close"].to_numpy()
    print(f"bars: {len(bars)} x 1h, close {c[0]:.2f} -> {c[-1]:.2f} (min {c.min():.2f}, max {c.max():.2f})")

    selected = [cs for cs in CASES if not args.case or cs["case"] in args.case]
    for case in selected:
        fx = run_case(case, bars)
        write_fixture(FIXTURES / f"{case['case']}.json", fx)
        ex = fx["expected"]
        mt = ex["metrics"]
        n_eow = sum(t["exit_reason"] == "end_of_window" for t in ex["trades"])
        print(
            f"{case['case']:<24} trades {len(ex['trades']):>4} (end_of_window {n_eow})  final_equity {ex['final_equity']!r}"
            f"  total_return {mt['total_return']:+.4f}  sharpe {mt['sharpe'] if mt['sharpe'] is None else round(mt['sharpe'], 4)}"
            f"  max_dd {mt['max_drawdown']:.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
