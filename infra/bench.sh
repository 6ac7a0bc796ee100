#!/usr/bin/env bash
# The benchmarks, printing figures (speed and memory targets are checked here, never by timed
# tests). Run on a quiet machine: the figures are only as good as the CPU time they get.
#
#   infra/bench.sh engine   simulation throughput (bars/s) and peak memory, 1 and 5 years of 1m bars
#   infra/bench.sh data     ingest throughput (rows/s) into moto, and load time of 1 and 5 years of 1m bars
#   infra/bench.sh api      create/get/list latency (p50/p99) and submit-to-done of a one-year 1m job,
#                           through a release-built local stack of its own (ports 3290/4690, .local-bench)
#   infra/bench.sh results  a ~525,000-trade result (2 years of 1m, tpl_ma_cross 1/2 both): time to done,
#                           default GET and 1,000-trade page latency, peak memory of get-job and job-worker,
#                           on a release-built local stack of its own (as api)
#   infra/bench.sh run      parse throughput (MB/s, rows/s) of one year of 1m bars as plain and Binance CSV
#                           and as a streamed Binance zip, Parquet decoding, ingest of that year without the
#                           store (rows/s), and `pipai run` on that year (plain CSV, one Parquet file, a
#                           directory of 12 month partitions; SMA 10/50, result written): its phases and
#                           peak RSS, and the whole process's wall time, median of 5, with the machine's load
#   infra/bench.sh artifacts  artifact files (equity/trades Parquet + CSV, bars.parquet): writing time and
#                           size of a one-year 1m job and of the largest accepted job (20 symbols x 5 years
#                           of 1m; BENCH_ARTIFACT_SYMBOLS / BENCH_ARTIFACT_YEARS shrink it), and the provenance hash
#   infra/bench.sh sweep    batch::evaluate on one year of 1m bars: each template at 100, 1,000 and 10,000
#                           configs, on all cores then on one: configs/s, bar evaluations/s (configs x bars
#                           / s, also per CPU second) and peak RSS, median of 3 (SWEEP_ARGS adds flags, e.g.
#                           "--sizes 100,1000 --templates tpl_ma_cross"), with the machine's load
#   infra/bench.sh sweep-vbt  `pipai sweep` of a 100-config SMA grid on one year of 1m bars against vectorbt 1.2
#                           doing the same grid column-wise (shared/engine/crosscheck/compare_sweep.sh; needs
#                           the crosscheck venv: shared/engine/crosscheck/run.sh once); not part of `all`
#   infra/bench.sh sweep-stack  a 1,000-config sweep (15m, one year) and the 100-config 1m grid (one year)
#                           through a release-built local stack of its own (ports 3292/4692,
#                           .local-bench-sweep): submit-to-done wall time and configs/s; not part of `all`
#   infra/bench.sh          all of them
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
"$REPO/infra/venv.sh" >/dev/null

engine() {
  echo "==> engine (cargo bench -p pipai --bench engine)"
  cargo bench -q -p pipai --bench engine
}

data() {
  echo "==> market data (cargo bench -p pipai --bench market_data)"
  cargo bench -q -p pipai --bench market_data
}

# A release-built local stack of its own (ports 3290/4690, state in .local-bench; override with
# BENCH_API_PORT, BENCH_MOTO_PORT, BENCH_LOCAL_DIR), brought down on exit; exports what pipai needs.
bench_stack() {
  export PIPAI_LOCAL_DIR="${BENCH_LOCAL_DIR:-$REPO/.local-bench}" PIPAI_LOCAL_PORT="${BENCH_API_PORT:-3290}" MOTO_PORT="${BENCH_MOTO_PORT:-4690}"
  # Not throttled by the per-key request-weight budget (1200 a minute by default).
  export PIPAI_LOCAL_PARAMS="RequestWeightBudget=1000000"
  trap '"$REPO/infra/local.sh" down >/dev/null 2>&1' EXIT
  "$REPO/infra/local.sh" up --release >"$PIPAI_LOCAL_DIR.log" 2>&1 || { tail -n 30 "$PIPAI_LOCAL_DIR.log"; exit 1; }
  # shellcheck disable=SC1091
  . "$PIPAI_LOCAL_DIR/demo-key.env"
  export PIPAI_API_URL="http://127.0.0.1:$PIPAI_LOCAL_PORT" PIPAI_API_KEY PIPAI_API_SECRET
}

api() {
  echo "==> API through the local stack (release build; the first build takes a while)"
  bench_stack
  "$REPO/target/release/pipai" jobs bench --requests "${BENCH_REQUESTS:-200}"
}

# Peak and current resident memory of the functions `cargo lambda watch` runs (one process each,
# its children).
function_memory() {
  local pid args
  ps -o pid=,args= --ppid "$(cat "$PIPAI_LOCAL_DIR/watch.pid")" | while read -r pid args; do
    for fn in "$@"; do
      if [[ "$args" == */release/"$fn" || "$args" == */release/"$fn"\ * ]]; then
        printf '%-10s pid %-7s peak RSS (VmHWM) %s, now (VmRSS) %s\n' "$fn" "$pid" \
          "$(awk '/^VmHWM/ {print $2, $3}' "/proc/$pid/status")" "$(awk '/^VmRSS/ {print $2, $3}' "/proc/$pid/status")"
      fi
    done
  done
}

results() {
  echo "==> a very large result (about 525,000 trades) through the local stack (release build)"
  bench_stack
  "$REPO/target/release/pipai" jobs bench-results
  function_memory get-job job-worker
}

# Median wall time in ms of 5 runs of a command (its output dropped).
median_of_5_ms() {
  local times=() t0 t1
  for _ in 1 2 3 4 5; do
    t0=$(date +%s%N)
    "$@" >/dev/null
    t1=$(date +%s%N)
    times+=($(((t1 - t0) / 1000000)))
  done
  echo "median $(printf '%s\n' "${times[@]}" | sort -n | sed -n 3p) ms of 5 (${times[*]} ms)"
}

run() {
  echo "==> parsing (cargo bench -p pipai-market-data --bench parse)"
  cargo bench -q -p pipai-market-data --bench parse
  echo "==> ingest without the store (cargo bench -p pipai-market-data --bench ingest)"
  cargo bench -q -p pipai-market-data --bench ingest
  cargo build -q --release -p pipai
  local pipai="$REPO/target/release/pipai" dir data
  dir="$(mktemp -d)"
  trap 'rm -rf "$dir"' RETURN
  "$pipai" data generate --symbol BTCUSDT --from 2024-01-01 --to 2025-01-01 --out "$dir/year.csv" >/dev/null
  "$pipai" data generate --symbol BTCUSDT --from 2024-01-01 --to 2025-01-01 --out "$dir/year.parquet" >/dev/null
  cat >"$dir/job.json" <<'JOB'
{"template_id": "tpl_ma_cross", "params": {"fast": 10, "slow": 50}, "symbols": ["BTCUSDT"], "timeframe": "1m",
 "start": "2024-01-01T00:00:00Z", "end": "2024-12-31T23:59:00Z", "capital": "10000.00", "fee_model": "fixed_bps", "fee_bps": "5"}
JOB
  # The year as the bucket holds it: 12 month partitions, read together by `--data DIR`.
  mkdir -p "$dir/months"
  for m in 01 02 03 04 05 06 07 08 09 10 11 12; do
    local next=$((10#$m + 1)) to
    to="2024-$(printf '%02d' "$next")-01"
    [[ $m == 12 ]] && to=2025-01-01
    "$pipai" data generate --symbol BTCUSDT --from "2024-$m-01" --to "$to" --out "$dir/months/month=2024-$m.parquet" >/dev/null
  done
  for data in year.csv year.parquet months; do
    echo "==> pipai run, one year of 1m bars ($data, SMA 10/50, full result written)"
    local args=(run --config "$dir/job.json" --data "$dir/$data" --out "$dir/result.json")
    "$pipai" "${args[@]}" >/dev/null # warm the page cache
    "$pipai" "${args[@]}" --timings 2>&1 >/dev/null | sed 's/^/    /'
    echo "    whole process: $(median_of_5_ms "$pipai" "${args[@]}")"
  done
  echo "    load: $(uptime)"
}

artifacts() {
  echo "==> artifact files (cargo bench -p pipai-artifacts --bench write)"
  cargo bench -q -p pipai-artifacts --bench write
  echo "    load: $(uptime)"
}
# --- sweep (batch engine) ---
sweep() {
  echo "==> sweep batch engine (cargo run --release -p pipai-engine --example sweep_bench)"
  cargo build -q --release -p pipai-engine --example sweep_bench
  local bench="$REPO/target/release/examples/sweep_bench"
  echo "    load: $(uptime)"
  # shellcheck disable=SC2086
  "$bench" --repeat 3 ${SWEEP_ARGS:-}
  # shellcheck disable=SC2086
  "$bench" --repeat 3 --threads 1 ${SWEEP_ARGS:-}
  echo "    load: $(uptime)"
}
# --- end sweep ---
# `pipai sweep` against vectorbt (its own script: the venv, both timings, the ratio).
sweep_vbt() {
  echo "==> pipai sweep against vectorbt 1.2, 100 configs on one year of 1m bars"
  bash "$REPO/shared/engine/crosscheck/compare_sweep.sh"
}

# --- sweep-stack (a sweep through the local stack, submit to done) ---
# Two sweeps through a release-built local stack of its own (ports 3292/4692, .local-bench-sweep;
# BENCH_API_PORT, BENCH_MOTO_PORT, BENCH_LOCAL_DIR override), on the synthetic bars local.sh
# ingests: 1,000 configs on one year of 15m bars, and the 100-config grid (fast 5..50 by 5 x
# slow 60..240 by 20) on one year of 1m bars. Prints each one's submit-to-done wall time as the
# client sees it (`pipai sweeps submit --wait`, polling every second) and as the service recorded
# it (finished_at - submitted_at), configs/s, and the load average.
sweep_stack() {
  echo "==> sweeps through the local stack, submit to done (release build; the first build takes a while)"
  export BENCH_API_PORT="${BENCH_API_PORT:-3292}" BENCH_MOTO_PORT="${BENCH_MOTO_PORT:-4692}"
  export BENCH_LOCAL_DIR="${BENCH_LOCAL_DIR:-$REPO/.local-bench-sweep}"
  bench_stack
  local pipai="$REPO/target/release/pipai" dir
  dir="$(mktemp -d)"
  local base='"template_id": "tpl_ma_cross", "params": {"direction": "long"}, "symbols": ["BTCUSDT"],
     "start": "2024-01-01T00:00:00Z", "capital": "10000.00", "fee_model": "fixed_bps", "fee_bps": "5"'
  cat >"$dir/15m-1000.json" <<JSON
{"base": {$base, "timeframe": "15m", "end": "2024-12-31T23:45:00Z"},
 "space": {"params.fast": {"from": 1, "to": 50, "step": 1}, "params.slow": {"from": 60, "to": 250, "step": 10}}}
JSON
  cat >"$dir/1m-100.json" <<JSON
{"base": {$base, "timeframe": "1m", "end": "2024-12-31T23:59:00Z"},
 "space": {"params.fast": {"from": 5, "to": 50, "step": 5}, "params.slow": {"from": 60, "to": 240, "step": 20}}}
JSON
  local name t0 t1 id
  for name in 15m-1000 1m-100; do
    echo "    load before: $(uptime)"
    t0=$(date +%s%N)
    "$pipai" sweeps submit "$dir/$name.json" --wait >"$dir/$name.out"
    t1=$(date +%s%N)
    id="$(grep -o '"id": *"sw_[0-9a-f]*"' "$dir/$name.out" | head -n 1 | grep -o 'sw_[0-9a-f]*')"
    "$pipai" sweeps get "$id" >"$dir/$name.json.out"
    python3 - "$dir/$name.json.out" "$(((t1 - t0) / 1000000))" "$name" <<'PY'
import json, sys
from datetime import datetime
v = json.load(open(sys.argv[1]))
ms = lambda t: datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() * 1000
wall, service = int(sys.argv[2]), ms(v["finished_at"]) - ms(v["submitted_at"])
n = v["n_configs"]
print(f"    {sys.argv[3]}: {v['id']} {v['status']}, {n} configs ({v['completed']} completed, {v['failed']} failed); "
      f"submit to done {wall / 1000:.2f} s as the client saw it ({n / (wall / 1000):.1f} configs/s), "
      f"{service / 1000:.2f} s recorded by the service ({n / (service / 1000):.1f} configs/s)")
PY
  done
  echo "    load after: $(uptime)"
  rm -rf "$dir"
}
# --- end sweep-stack ---

case "${1:-all}" in
  engine) engine ;;
  data) data ;;
  api) api ;;
  results) results ;;
  run) run ;;
  artifacts) artifacts ;;
  sweep) sweep ;;
  sweep-vbt) sweep_vbt ;;
  sweep-stack) sweep_stack ;;
  all) engine; data; run; sweep; artifacts; api; results ;;
  *) echo "usage: infra/bench.sh [engine|data|run|sweep|artifacts|api|results|sweep-vbt|sweep-stack|all]" >&2; exit 2 ;;
esac
