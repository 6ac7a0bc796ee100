#!/usr/bin/env bash
# Whole-process speed of `pipai sweep` against vectorbt 1.2 on the same 100-config grid: SMA cross
# fast 5..50 by 5 x slow 60..240 by 20, long-only, 5 bps, one year of 1m bars (2024: 527,040), the
# ranking by Sharpe written as JSON. vectorbt does it column-wise, as its users write it
# (sweep_vbt.py: one column per config, one Portfolio.from_signals). Both timed from process
# start to exit, median of 5 (pipai) and 3 (vectorbt, after one untimed run that fills Numba's
# cache); prints the ratio and the machine's load. Run by hand, not by the tests:
#
#   bash shared/engine/crosscheck/run.sh              # once: creates .venv-crosscheck (vectorbt)
#   bash shared/engine/crosscheck/compare_sweep.sh    # or: infra/bench.sh sweep-vbt
#
# Builds pipai with --release. Override the venv's interpreter with PYTHON=/path/to/python.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/speed_common.sh"
cat >"$dir/sweep.json" <<'SWEEP'
{"base": {"template_id": "tpl_ma_cross", "params": {"direction": "long"}, "symbols": ["BTCUSDT"], "timeframe": "1m",
          "start": "2024-01-01T00:00:00Z", "end": "2024-12-31T23:59:00Z", "capital": "10000.00",
          "fee_model": "fixed_bps", "fee_bps": "5"},
 "space": {"params.fast": {"from": 5, "to": 50, "step": 5}, "params.slow": {"from": 60, "to": 240, "step": 20}},
 "rank_metric": "sharpe"}
SWEEP

ours=(sweep --config "$dir/sweep.json" --data "$dir/year.csv" --out "$dir/pipai.json")
theirs=("$python" "$here/sweep_vbt.py" "$dir/year.csv" "$dir/vectorbt.json")
time_both
best() {
    "$python" -c 'import json, sys
e = json.load(open(sys.argv[1]))["leaderboard"][0]
p, m = (e["config"]["params"], e["metrics"]) if "config" in e else (e, e)
print("best fast %s slow %s, sharpe %s" % (p["fast"], p["slow"], m["sharpe"]))' "$1"
}
echo "100-config SMA grid (fast 5..50/5 x slow 60..240/20), one year of 1m bars (527,040), long, 5 bps, ranking written:"
echo "  pipai sweep  median ${pipai_ms} ms of 5 (${pipai_all} ms); $(best "$dir/pipai.json")"
echo "  vectorbt     median ${vbt_ms} ms of 3 (${vbt_all} ms); $(best "$dir/vectorbt.json")"
echo "  ratio        ${ratio} (target: at least 300x)"
echo "  cores: $(nproc); load: $(uptime)"
