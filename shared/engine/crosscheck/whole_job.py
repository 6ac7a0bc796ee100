#!/usr/bin/env python3
"""The whole `pipai run` job done by vectorbt 1.2, for the speed comparison (compare_speed.sh).

    whole_job.py BARS.csv RESULT.json

Reads a plain bar CSV (open_time,open,high,low,close,volume; 1m bars), computes the SMA 10/50
cross with vectorbt's MA indicator, simulates long-only with `vbt.Portfolio.from_signals` under
our execution model (signal on a bar's close, filled at the next bar's open, all cash in, 5 bps of
the notional as the fee, the position closed at the last close), and writes the metrics, the
trades and the daily equity curve as JSON, as `pipai run --out` does. Not a fixture generator:
crosscheck.py is where the numbers are checked against the engine.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import vectorbt as vbt

from crosscheck import shift_to_fill_bars

FAST, SLOW = 10, 50
FEE_RATE = 5 / 10000
CAPITAL = 10000.0
MINUTE_MS = 60_000
DAY_MS = 86_400_000


def daily_equity(t_ms: np.ndarray, value: np.ndarray) -> list[dict]:
    """The equity at each UTC day's last bar."""
    day = t_ms // DAY_MS
    last = np.flatnonzero(np.append(day[1:] != day[:-1], True))
    return [{"date": str(pd.Timestamp(int(day[i]) * DAY_MS, unit="ms").date()), "equity": float(value[i])} for i in last]


def main(bars_csv: str, result_json: str) -> None:
    bars = pd.read_csv(bars_csv)
    t_ms = bars["open_time"].to_numpy(np.int64)
    o, c = bars["open"].to_numpy(), bars["close"].to_numpy()
    n = len(c)
    # The Numba engine's rolling mean is numpy's cumsum difference, the floats the engine computes;
    # vectorbt's default ("auto": Rust when vectorbt-rust is installed) rounds differently, which
    # at an exact tie of the two averages makes a cross ours does not see (see the README).
    fast, slow = vbt.MA.run(c, FAST, engine="numba"), vbt.MA.run(c, SLOW, engine="numba")
    up, dn = fast.ma_crossed_above(slow).to_numpy(), fast.ma_crossed_below(slow).to_numpy()
    entries, exits = shift_to_fill_bars(up, n), shift_to_fill_bars(dn, n)
    exits[n], entries[n] = True, False  # the end of the window closes the position
    # A plain integer index: with a DatetimeIndex, pandas 3 turns it into 527,041 Timestamp objects
    # in every one of vectorbt's shape checks (0.7 s each, 16 s of `stats()`), which would flatter
    # us. `freq` still annualises.
    index = pd.RangeIndex(n + 1)
    pf = vbt.Portfolio.from_signals(
        close=pd.Series(np.append(c, c[-1]), index=index),
        price=pd.Series(np.append(o, c[-1]), index=index),
        entries=pd.Series(entries, index=index),
        exits=pd.Series(exits, index=index),
        size=np.inf,
        fees=FEE_RATE,
        init_cash=CAPITAL,
        freq="1min",
    )
    result = {
        "metrics": {k: str(v) for k, v in pf.stats().items()},
        "trades": pf.positions.records_readable.astype(str).to_dict("records"),
        "equity_curve": daily_equity(np.append(t_ms, t_ms[-1] + MINUTE_MS), pf.value().to_numpy()),
    }
    with open(result_json, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main(*sys.argv[1:3])
