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

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
python="${PYTHON:-$repo/.venv-crosscheck/bin/python}"
if ! "$python" -c 'import vectorbt' 2>/dev/null; then
    echo "compare_sweep.sh: $python cannot import vectorbt; run shared/engine/crosscheck/run.sh once first" >&2
    exit 1
fi

(cd "$repo" && cargo build -q --release -p pipai)
pipai="$repo/target/release/pipai"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
"$pipai" data generate --symbol BTCUSDT --from 2024-01-01 --to 2025-01-01 --out "$dir/year.csv" >/dev/null
cat >"$dir/sweep.json" <<'SWEEP'
{"base": {"template_id": "tpl_ma_cross", "params": {"direction": "long"}, "symbols": ["BTCUSDT"], "timeframe": "1m",
          "start": "2024-01-01T00:00:00Z", "end": "2024-12-31T23:59:00Z", "capital": "10000.00",
          "fee_model": "fixed_bps", "fee_bps": "5"},
 "space": {"params.fast": {"from": 5, "to": 50, "step": 5}, "params.slow": {"from": 60, "to": 240, "step": 20}},
 "rank_metric": "sharpe"}
SWEEP

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
    echo "$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p") ${times[*]}"
}

ours=(sweep --config "$dir/sweep.json" --data "$dir/year.csv" --out "$dir/pipai.json")
theirs=("$python" "$here/sweep_vbt.py" "$dir/year.csv" "$dir/vectorbt.json")
"$pipai" "${ours[@]}" >/dev/null  # the page cache
"${theirs[@]}" >/dev/null         # Numba's cache
read -r pipai_ms pipai_all <<<"$(median_ms 5 "$pipai" "${ours[@]}")"
read -r vbt_ms vbt_all <<<"$(median_ms 3 "${theirs[@]}")"
best() {
    "$python" -c 'import json, sys; e = json.load(open(sys.argv[1]))["leaderboard"][0]
c = e.get("config", {}).get("params", e); print(f"best fast {c[\"fast\"]} slow {c[\"slow\"]}, sharpe {e.get(\"metrics\", e)[\"sharpe\"]}")' "$1"
}
echo "100-config SMA grid (fast 5..50/5 x slow 60..240/20), one year of 1m bars (527,040), long, 5 bps, ranking written:"
echo "  pipai sweep  median ${pipai_ms} ms of 5 (${pipai_all} ms); $(best "$dir/pipai.json")"
echo "  vectorbt     median ${vbt_ms} ms of 3 (${vbt_all} ms); $(best "$dir/vectorbt.json")"
echo "  ratio        $(awk -v a="$vbt_ms" -v b="$pipai_ms" 'BEGIN {printf "%.0fx", a / (b > 0 ? b : 1)}') (target: at least 300x)"
echo "  cores: $(nproc); load: $(uptime)"
