#!/usr/bin/env bash
# The whole service on this machine, no AWS account and no Docker:
#   moto (DynamoDB, Streams, SQS, S3, SSM) with the resources of template.yaml,
#   synthetic market data loaded through the ingest path, a demo API key,
#   the functions served by `cargo lambda watch` on an internal port, infra/local_gateway.py in
#   front of them on http://127.0.0.1:3000 answering like API Gateway (routes from Cargo.toml's
#   router, the same as template.yaml's; the invoke endpoints are not reachable through it), and
#   infra/local_pump.py delivering the SQS queues and the jobs table's stream to job-worker,
#   job-events and job-notifier like Lambda does (through the internal port).
#
#   infra/local.sh up [--release]   start everything (idempotent: restarts what runs)
#   infra/local.sh down             stop everything
#   infra/local.sh status           what runs
#   infra/local.sh pause|resume MAPPING
#                                   stop/restart delivering one event source mapping of
#                                   template.yaml (JobWorkerQueueMapping, JobWorkerDeadLetterMapping,
#                                   JobEventsStreamMapping, JobNotifierQueueMapping), like disabling
#                                   it in AWS: messages wait
#
# Each function runs one instance (`cargo lambda watch --concurrency 1`). With more, cargo-lambda
# 1.9.2 handed the worker its timeout instead of a deadline and instances died under load ("missing
# lambda-runtime-aws-request-id header"; possibly the idle timeout below, not retried since). So
# concurrent requests to one function are served one after another locally; the race they would
# have is tested on DynamoDB itself (shared/aws/tests/moto/jobs.rs).
#
# Env: PIPAI_LOCAL_KEYS="key:secret,key2:secret2" creates these keys too (user "local").
#      PIPAI_LOCAL_PORT (3000: the API, served by the gateway; PIPAI_LOCAL_PORT + 1 is the internal
#      port of `cargo lambda watch`, whose invoke endpoints the pump and
#      `cargo lambda invoke --invoke-port` use), MOTO_PORT (4566), PIPAI_LOCAL_DIR (.local: state,
#      logs, pidfiles; infra/test.sh runs a second stack beside a developer's with other ports and
#      directory),
#      PIPAI_LOCAL_PARAMS="Name=Value ..." template.yaml parameter overrides (infra/bench.sh raises
#      RequestWeightBudget so the latency benchmark is not throttled).
#      PIPAI_LOCAL_ALLOW_HTTP_WEBHOOKS=1 accepts http://127.0.0.1[:port] as a job's notify_url
#      (template parameter AllowHttpLoopbackWebhooks=true), for receivers on this machine;
#      PIPAI_WEBHOOK_BACKOFF_BASE_MS (1000 here, 30000 deployed) is the first webhook retry's delay.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PIPAI_LOCAL_DIR="${PIPAI_LOCAL_DIR:-$REPO/.local}"
LOCAL="$PIPAI_LOCAL_DIR"
PORT="${PIPAI_LOCAL_PORT:-3000}"
INVOKE_PORT=$((PORT + 1))
export MOTO_PORT="${MOTO_PORT:-4566}"
mkdir -p "$LOCAL"
cd "$REPO"

FUNCTIONS="create-job get-job list-jobs cancel-job list-symbols list-templates job-worker job-events job-notifier"
FUNCTIONS="$FUNCTIONS create-strategy get-strategy list-strategies update-strategy delete-strategy"
FUNCTIONS+=" delete-job compare-jobs"  # deleting and comparing jobs
FUNCTIONS+=" create-sweep get-sweep list-sweeps cancel-sweep sweep-events sweep-worker"  # sweeps

pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pidfile() {
  local f="$1"
  if pid_alive "$f"; then
    # The process group: cargo lambda watch runs the functions as children.
    kill -- "-$(cat "$f")" 2>/dev/null || kill "$(cat "$f")" 2>/dev/null || true
    for _ in $(seq 50); do pid_alive "$f" || break; sleep 0.1; done
    pid_alive "$f" && kill -9 -- "-$(cat "$f")" 2>/dev/null || true
  fi
  rm -f "$f"
}

down() {
  stop_pidfile "$LOCAL/gateway.pid"
  stop_pidfile "$LOCAL/pump.pid"
  stop_pidfile "$LOCAL/watch.pid"
  "$REPO/infra/moto.sh" stop >/dev/null 2>&1 || true
  echo "local stack stopped"
}

status() {
  for name in gateway watch pump; do
    if pid_alive "$LOCAL/$name.pid"; then echo "$name: running (pid $(cat "$LOCAL/$name.pid"))"; else echo "$name: stopped"; fi
  done
  "$REPO/infra/moto.sh" status || true
}

up() {
  local profile=debug release_flag=()
  if [[ "${1:-}" == "--release" ]]; then profile=release; release_flag=(--release); fi
  echo "==> tools (infra/venv.sh)"
  "$REPO/infra/venv.sh"
  export PATH="$REPO/.venv/bin:$PATH"

  down >/dev/null
  rm -rf "$LOCAL/paused"
  echo "==> moto on 127.0.0.1:$MOTO_PORT and the resources of template.yaml"
  "$REPO/infra/moto.sh" start
  local params=()
  for p in ${PIPAI_LOCAL_PARAMS:-}; do params+=(--param "$p"); done
  # Completion webhooks: retries seconds apart, and (when asked) receivers on 127.0.0.1.
  params+=(--param "WebhookBackoffBaseMs=${PIPAI_WEBHOOK_BACKOFF_BASE_MS:-1000}")
  if [[ "${PIPAI_LOCAL_ALLOW_HTTP_WEBHOOKS:-0}" == 1 ]]; then params+=(--param AllowHttpLoopbackWebhooks=true); fi
  "$REPO/.venv/bin/python" "$REPO/infra/create_resources.py" --port "$MOTO_PORT" --env-file "$LOCAL/env" -q "${params[@]}"
  # shellcheck disable=SC1091
  . "$LOCAL/env"
  # Locally a crashed run is retried after seconds, not minutes: a 5 s lease (heartbeats every
  # second), and failed messages come back after 8 s (PIPAI_LOCAL_RETRY_SECONDS, the pump's stand-in
  # for the queue's 720 s visibility timeout). As in AWS, a message comes back only after the
  # lease of the run that failed has run out, so the next delivery can take the job over.
  export WORKER_LEASE_SECONDS="${WORKER_LEASE_SECONDS:-5}"
  export PIPAI_LOCAL_RETRY_SECONDS="${PIPAI_LOCAL_RETRY_SECONDS:-$((WORKER_LEASE_SECONDS + 3))}"
  sed -n 's/^export //p' "$LOCAL/env" > "$LOCAL/lambda.env"
  echo "WORKER_LEASE_SECONDS=$WORKER_LEASE_SECONDS" >> "$LOCAL/lambda.env"

  echo "==> building the functions and pipai ($profile; the first build takes several minutes)"
  # One binary at a time, as `cargo lambda watch` builds them (`cargo run --bin X`): a
  # workspace-wide build unifies features differently, and watch would rebuild on first use.
  for bin in pipai $FUNCTIONS; do
    cargo build --quiet --bin "$bin" "${release_flag[@]}"
  done
  local pipai="$REPO/target/$profile/pipai"

  echo "==> demo market data through the ingest path (synthetic BTCUSDT, ETHUSDT 1m, 2024-2025)"
  "$pipai" data ingest --synthetic --symbol BTCUSDT --symbol ETHUSDT --from 2024-01-01 --to 2026-01-01

  echo "==> API keys"
  "$pipai" keys create --user demo --label "local demo" --save "$LOCAL/demo-key.env"
  if [[ -n "${PIPAI_LOCAL_KEYS:-}" ]]; then
    "$pipai" keys import --user local "$PIPAI_LOCAL_KEYS"
  fi

  echo "==> functions on 127.0.0.1:$INVOKE_PORT (cargo lambda watch), the API gateway on http://127.0.0.1:$PORT, the event pump"
  # --timeout also bounds how long an idle function waits for its next event: when it runs out,
  # cargo-lambda 1.9.2 answers with no request id, the runtime panics and the function is not
  # restarted. So it is a day here; the pump bounds each invocation itself (local_pump.py --timeout).
  setsid cargo lambda watch -A 127.0.0.1 -P "$INVOKE_PORT" --env-file "$LOCAL/lambda.env" --ignore-changes --timeout 86400 \
    "${release_flag[@]}" >"$LOCAL/watch.log" 2>&1 &
  echo $! >"$LOCAL/watch.pid"
  local lambda_url="http://127.0.0.1:$INVOKE_PORT"
  for _ in $(seq 600); do
    if curl -s -o /dev/null "$lambda_url/v1/backtest/templates"; then break; fi
    pid_alive "$LOCAL/watch.pid" || { tail -n 30 "$LOCAL/watch.log"; echo "cargo lambda watch exited" >&2; exit 1; }
    sleep 0.5
  done
  # Start the queue and stream consumers before the pump delivers to them: an invocation's
  # deadline runs from its arrival, and a process start must not eat a job's time.
  for fn in job-worker job-events job-notifier; do
    curl -s -o /dev/null --max-time 300 -X POST -d '{"Records": []}' "$lambda_url/2015-03-31/functions/$fn/invocations"
  done
  setsid "$REPO/.venv/bin/python" -u "$REPO/infra/local_pump.py" --lambda-url "$lambda_url" >"$LOCAL/pump.log" 2>&1 &
  echo $! >"$LOCAL/pump.pid"
  # API Gateway's part: routes, the payload v2 event, 404 for anything unrouted (infra/local_gateway.py says why
  # `cargo lambda watch` does not face clients itself).
  setsid "$REPO/.venv/bin/python" -u "$REPO/infra/local_gateway.py" --port "$PORT" --lambda-url "$lambda_url" \
    >"$LOCAL/gateway.log" 2>&1 &
  echo $! >"$LOCAL/gateway.pid"
  for _ in $(seq 100); do
    if curl -s -o /dev/null "http://127.0.0.1:$PORT/"; then break; fi
    pid_alive "$LOCAL/gateway.pid" || { tail -n 30 "$LOCAL/gateway.log"; echo "the gateway exited" >&2; exit 1; }
    sleep 0.1
  done
  # Warm the API functions too (the first invocation starts each process).
  for route in templates symbols jobs jobs/bt_00000000; do curl -s -o /dev/null "http://127.0.0.1:$PORT/v1/backtest/$route" || true; done

  # shellcheck disable=SC1091
  . "$LOCAL/demo-key.env"
  cat <<EOF

The PipAI Backtest API is up on http://127.0.0.1:$PORT (logs: $LOCAL/gateway.log, $LOCAL/watch.log,
$LOCAL/pump.log; the functions' invoke endpoints are on the internal port $INVOKE_PORT).
Demo key (also in $LOCAL/demo-key.env):
  export PIPAI_API_URL=http://127.0.0.1:$PORT
  export PIPAI_API_KEY=$PIPAI_API_KEY
  export PIPAI_API_SECRET=$PIPAI_API_SECRET
Then:
  $pipai jobs submit docs/examples/grid-btc-2025.json --wait
Stop with: infra/local.sh down
EOF
}

mapping_names() { "$REPO/.venv/bin/python" -c 'import json,sys; print(" ".join(m["name"] for m in json.load(open(sys.argv[1]))))' "$LOCAL/mappings.json"; }

pause() {
  local name="${1:?which mapping? one of: $(mapping_names)}"
  [[ " $(mapping_names) " == *" $name "* ]] || { echo "no mapping $name; there are: $(mapping_names)" >&2; exit 2; }
  mkdir -p "$LOCAL/paused/$name" && touch "$LOCAL/paused/$name/manual"
  echo "$name paused: its events wait until infra/local.sh resume $name"
}

resume() {
  local name="${1:?which mapping? one of: $(mapping_names)}"
  rm -f "$LOCAL/paused/$name/manual"
  echo "$name resumed"
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) down ;;
  status) status ;;
  pause) shift; pause "$@" ;;
  resume) shift; resume "$@" ;;
  *) echo "usage: infra/local.sh up [--release] | down | status | pause MAPPING | resume MAPPING" >&2; exit 2 ;;
esac
