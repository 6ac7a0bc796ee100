#!/usr/bin/env bash
# Whole-process speed of `pipai run` against vectorbt 1.2 doing the same whole job on the same
# year of 1m bars: read the plain CSV, SMA 10/50 cross, long-only from_signals with our fee rule
# (5 bps), write the result JSON (whole_job.py). Both timed from process start to exit, median of
# 5 (pipai) and 3 (vectorbt, after one untimed run that fills Numba's cache); prints the ratio.
# Run by hand, not by the tests:
#
#   bash shared/engine/crosscheck/run.sh              # once: creates .venv-crosscheck (vectorbt)
#   bash shared/engine/crosscheck/compare_speed.sh
#
# Builds pipai with --release. Override the venv's interpreter with PYTHON=/path/to/python.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/speed_common.sh"
cat >"$dir/job.json" <<'JOB'
{"template_id": "tpl_ma_cross", "params": {"fast": 10, "slow": 50}, "symbols": ["BTCUSDT"], "timeframe": "1m",
 "start": "2024-01-01T00:00:00Z", "end": "2024-12-31T23:59:00Z", "capital": "10000.00", "fee_model": "fixed_bps", "fee_bps": "5"}
JOB

ours=(run --config "$dir/job.json" --data "$dir/year.csv" --out "$dir/pipai.json")
theirs=("$python" "$here/whole_job.py" "$dir/year.csv" "$dir/vectorbt.json")
time_both
trades() { "$python" -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["trades"]))' "$1"; }
echo "one year of 1m bars (2024: 527,040), SMA 10/50, long, 5 bps, result written:"
echo "  pipai run  median ${pipai_ms} ms of 5, $(trades "$dir/pipai.json") trades"
echo "  vectorbt   median ${vbt_ms} ms of 3, $(trades "$dir/vectorbt.json") trades"
echo "  ratio      ${ratio} (target: at least 200x)"
echo "  load: $(uptime)"
