# Sourced by compare_speed.sh and compare_sweep.sh (whole-process speed against vectorbt 1.2):
# checks the crosscheck venv, builds pipai --release and writes one year of 1m bars (2024) to
# "$dir/year.csv". Sets: here, repo, python, pipai, dir (removed on exit); defines median_ms.
here="$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
python="${PYTHON:-$repo/.venv-crosscheck/bin/python}"
if ! "$python" -c 'import vectorbt' 2>/dev/null; then
    echo "$(basename "${BASH_SOURCE[1]}"): $python cannot import vectorbt; run shared/engine/crosscheck/run.sh once first" >&2
    exit 1
fi

(cd "$repo" && cargo build -q --release -p pipai)
pipai="$repo/target/release/pipai"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
"$pipai" data generate --symbol BTCUSDT --from 2024-01-01 --to 2025-01-01 --out "$dir/year.csv" >/dev/null

# Median wall time in ms of `runs` runs of the command after the first argument, then every
# run's time: "MEDIAN T1 T2 ...".
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

# Times pipai with the arguments in the array `ours` (median of 5) and the command in the array
# `theirs` (median of 3), each after one untimed run (the page cache; Numba's cache). Sets
# pipai_ms, pipai_all, vbt_ms, vbt_all (every run's ms) and ratio ("123x").
time_both() {
    "$pipai" "${ours[@]}" >/dev/null
    "${theirs[@]}" >/dev/null
    read -r pipai_ms pipai_all <<<"$(median_ms 5 "$pipai" "${ours[@]}")"
    read -r vbt_ms vbt_all <<<"$(median_ms 3 "${theirs[@]}")"
    ratio="$(awk -v a="$vbt_ms" -v b="$pipai_ms" 'BEGIN {printf "%.0fx", a / (b > 0 ? b : 1)}')"
}
