#!/usr/bin/env python3
"""The 100-config SMA sweep of `pipai sweep` done by vectorbt 1.2, for compare_sweep.sh.

    sweep_vbt.py BARS.csv LEADERBOARD.json

Reads a plain bar CSV (open_time,open,high,low,close,volume; 1m bars) and runs the grid the way
a vectorbt user writes it: one MA indicator call per side with one column per config (fast 5..50
by 5 repeated, slow 60..240 by 20 tiled: 100 columns), the crossings column-wise, one
`vbt.Portfolio.from_signals` over all 100 columns under our execution model (signal on a bar's
close, filled at the next bar's open, all cash in, 5 bps of the notional as the fee, the position
closed at the last close), then every column's stats, ranked by Sharpe, written as JSON. Not a
fixture generator: it is here to be timed.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import vectorbt as vbt

FAST = list(range(5, 51, 5))
SLOW = list(range(60, 241, 20))
FEE_RATE = 5 / 10000
CAPITAL = 10000.0


def shifted(sig: pd.DataFrame) -> np.ndarray:
    """Signal on row i's close -> order on row i+1; one extra row for the end of the window."""
    s = sig.to_numpy()
    out = np.zeros((s.shape[0] + 1, s.shape[1]), dtype=bool)
    out[1 : s.shape[0]] = s[:-1]
    return out


def main(bars_csv: str, out_json: str) -> None:
    bars = pd.read_csv(bars_csv)
    o, c = bars["open"].to_numpy(), bars["close"].to_numpy()
    n = len(c)
    fast = vbt.MA.run(c, np.repeat(FAST, len(SLOW)), short_name="fast")
    slow = vbt.MA.run(c, np.tile(SLOW, len(FAST)), short_name="slow")
    entries, exits = shifted(fast.ma_crossed_above(slow)), shifted(fast.ma_crossed_below(slow))
    exits[n], entries[n] = True, False  # the end of the window closes every position
    columns = pd.MultiIndex.from_arrays(
        [np.repeat(FAST, len(SLOW)), np.tile(SLOW, len(FAST))], names=["fast", "slow"]
    )
    index = pd.RangeIndex(n + 1)  # see whole_job.py: a DatetimeIndex would only slow vectorbt down
    pf = vbt.Portfolio.from_signals(
        close=pd.Series(np.append(c, c[-1]), index=index),
        price=pd.Series(np.append(o, c[-1]), index=index),
        entries=pd.DataFrame(entries, index=index, columns=columns),
        exits=pd.DataFrame(exits, index=index, columns=columns),
        size=np.inf,
        fees=FEE_RATE,
        init_cash=CAPITAL,
        freq="1min",
    )
    sharpe = pf.sharpe_ratio()
    stats = {
        "total_return": pf.total_return(),
        "max_drawdown": pf.max_drawdown(),
        "total_trades": pf.trades.count(),
        "sharpe": sharpe,
    }
    order = sharpe.sort_values(ascending=False, na_position="last", kind="stable").index
    board = [
        {"rank": r + 1, "fast": int(f), "slow": int(s), **{k: str(v[(f, s)]) for k, v in stats.items()}}
        for r, (f, s) in enumerate(order)
    ]
    with open(out_json, "w") as f:
        json.dump({"n_configs": len(board), "leaderboard": board}, f, indent=2)


if __name__ == "__main__":
    main(*sys.argv[1:3])
