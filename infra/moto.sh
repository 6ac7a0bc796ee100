#!/usr/bin/env bash
# Run a local moto server (DynamoDB + Streams, SQS, S3, SSM, ...) from the project venv.
#
#   infra/moto.sh start    # start in the background on 127.0.0.1:${MOTO_PORT:-4566}, wait until it answers
#   infra/moto.sh stop     # stop the server started by `start` on that port
#   infra/moto.sh status   # say whether it runs (exit 0) or not (exit 1)
#
# Pidfile and log: <repo>/.local/moto-<port>.pid / .log, so servers on different ports
# (a developer's on 4566, a test's on a free port) do not collide. State is in memory
# only: a restart starts empty (run infra/create_resources.py again).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PIPAI_VENV:-$REPO/.venv}"
PORT="${MOTO_PORT:-4566}"
HOST=127.0.0.1
LOCAL="${PIPAI_LOCAL_DIR:-$REPO/.local}"
PIDFILE="$LOCAL/moto-$PORT.pid"
LOG="$LOCAL/moto-$PORT.log"
URL="http://$HOST:$PORT"

answers() {
  # S3's ListBuckets: cheap whatever the server holds (moto's /moto-api/data.json would
  # serialize every stored object, which takes minutes once market data is loaded).
  "$VENV/bin/python" - "$URL" <<'PY' 2>/dev/null
import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1] + "/", timeout=2).read()
except Exception:
    sys.exit(1)
PY
}

running_pid() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid
  pid="$(cat "$PIDFILE")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

case "${1:-}" in
  start)
    "$REPO/infra/venv.sh"
    mkdir -p "$LOCAL"
    if pid="$(running_pid)"; then
      echo "moto: already running on $URL (pid $pid)"
      exit 0
    fi
    if answers; then
      echo "moto: port $PORT already answers but was not started by this script; set MOTO_PORT" >&2
      exit 1
    fi
    # setsid: own process group, so `stop` ends exactly this server and nothing else.
    # moto's DynamoDB backend takes no lock and its server is threaded: concurrent conditional
    # writes would both succeed, and a failed transaction restores stale copies of whole tables.
    # infra/moto-python/sitecustomize.py serializes DynamoDB (and Streams) requests, as DynamoDB's
    # own conditional writes are; SQS and S3 stay concurrent.
    PYTHONPATH="$REPO/infra/moto-python${PYTHONPATH:+:$PYTHONPATH}" PIPAI_MOTO_SERIALIZE_DYNAMODB=1 \
      setsid "$VENV/bin/moto_server" -H "$HOST" -p "$PORT" >"$LOG" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 150); do
      if answers; then
        echo "moto: running on $URL (pid $(cat "$PIDFILE"), log ${LOG#"$REPO"/})"
        exit 0
      fi
      if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
        echo "moto: server exited during start; last lines of $LOG:" >&2
        tail -n 20 "$LOG" >&2
        rm -f "$PIDFILE"
        exit 1
      fi
      sleep 0.2
    done
    echo "moto: no answer on $URL after 30s; see $LOG" >&2
    exit 1
    ;;
  stop)
    if pid="$(running_pid)"; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
      rm -f "$PIDFILE"
      echo "moto: stopped (pid $pid, port $PORT)"
    else
      rm -f "$PIDFILE"
      echo "moto: not running on port $PORT"
    fi
    ;;
  status)
    if pid="$(running_pid)" && answers; then
      echo "moto: running on $URL (pid $pid)"
    elif pid="$(running_pid)"; then
      echo "moto: process $pid alive but $URL does not answer"
      exit 1
    else
      echo "moto: not running on port $PORT"
      exit 1
    fi
    ;;
  *)
    echo "usage: $0 start|stop|status   (port: MOTO_PORT, default 4566)" >&2
    exit 2
    ;;
esac
