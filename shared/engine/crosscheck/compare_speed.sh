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

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
python="${PYTHON:-$repo/.venv-crosscheck/bin/python}"
if ! "$python" -c 'import vectorbt' 2>/dev/null; then
    echo "compare_speed.sh: $python cannot import vectorbt; run shared/engine/crosscheck/run.sh once first" >&2
    exit 1
fi

(cd "$repo" && cargo build -q --release -p pipai)
pipai="$repo/target/release/pipai"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
"$pipai" data generate --symbol BTCUSDT --from 2024-01-01 --to 2025-01-01 --out "$dir/year.csv" >/dev/null
cat >"$dir/job.json" <<'JOB'
{"template_id": "tpl_ma_cross", "params": {"fast": 10, "slow": 50}, "symbols": ["BTCUSDT"], "timeframe": "1m",
 "start": "2024-01-01T00:00:00Z", "end": "2024-12-31T23:59:00Z", "capital": "10000.00", "fee_model": "fixed_bps", "fee_bps": "5"}
JOB

# Median wall time in ms of `runs` runs of the command after the first argument.
median_ms() {
    local runs="$1" times=() t0 t1
    shift
    for _ in $(seq "$runs"); do
        t0=$(date +%s%N)
        "$@" >/dev/null
        t1=$(date +%s%N)
        times+=($(((t1 - t0) / 1000000)))
    done
    printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p"
}

ours=(run --config "$dir/job.json" --data "$dir/year.csv" --out "$dir/pipai.json")
theirs=("$python" "$here/whole_job.py" "$dir/year.csv" "$dir/vectorbt.json")
"$pipai" "${ours[@]}" >/dev/null  # the page cache
"${theirs[@]}" >/dev/null         # Numba's cache
pipai_ms="$(median_ms 5 "$pipai" "${ours[@]}")"
vbt_ms="$(median_ms 3 "${theirs[@]}")"
trades() { "$python" -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["trades"]))' "$1"; }
echo "one year of 1m bars (2024: 527,040), SMA 10/50, long, 5 bps, result written:"
echo "  pipai run  median ${pipai_ms} ms of 5, $(trades "$dir/pipai.json") trades"
echo "  vectorbt   median ${vbt_ms} ms of 3, $(trades "$dir/vectorbt.json") trades"
echo "  ratio      $(awk -v a="$vbt_ms" -v b="$pipai_ms" 'BEGIN {printf "%.0fx", a / (b > 0 ? b : 1)}') (target: at least 200x)"
echo "  load: $(uptime)"
