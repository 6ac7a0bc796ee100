#!/usr/bin/env bash
# Regenerates the vectorbt cross-check fixtures (shared/engine/crosscheck/fixtures/).
#
#   bash shared/engine/crosscheck/run.sh                   # reuse the bars CSV, rewrite the case JSONs
#   bash shared/engine/crosscheck/run.sh --regenerate-bars # also regenerate the bars CSV
#
# Creates <repo>/.venv-crosscheck (gitignored by /.venv*) on first use and installs the pinned
# requirements.txt into it; later runs reinstall only when requirements.txt changed. Works from any
# working directory. Needs python3 >= 3.11 (vectorbt 1.2 requires it) and PyPI access the first time.
# Override the interpreter with PYTHON=/path/to/python3.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
venv="$repo/.venv-crosscheck"
req="$here/requirements.txt"
python="${PYTHON:-python3}"

if ! "$python" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 15) else 1)'; then
    echo "run.sh: $python is $("$python" --version 2>&1); vectorbt 1.2.0 needs Python 3.11 to 3.14" >&2
    exit 1
fi

if [ ! -x "$venv/bin/python" ]; then
    echo "run.sh: creating $venv"
    "$python" -m venv "$venv"
fi

stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"
if [ "$want" != "$have" ]; then
    echo "run.sh: installing $req into $venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
    echo "$want" > "$stamp"
fi

# Numba's on-disk cache goes to __pycache__ next to vectorbt's sources inside the venv, so
# compilation is paid once per venv.
exec "$venv/bin/python" "$here/crosscheck.py" "$@"
