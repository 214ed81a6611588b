# shellcheck shell=bash
# Shared by the scripts in this folder (sourced, not run): the project root and its virtualenv.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# OTC_VENV points at another virtualenv (one shared by several checkouts, say).
VENV=${OTC_VENV:-$ROOT/.venv}

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

pick_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3.11 python3; do
        if [ -z "$candidate" ] || ! command -v "$candidate" >/dev/null 2>&1; then
            continue
        fi
        if "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
            echo "$candidate"
            return
        fi
    done
    die "OTC needs Python 3.11: install it, or set PYTHON=/path/to/python3.11"
}

# ensure_venv runtime|dev: create the virtualenv if missing and install the pinned requirements
# when they changed since the last install (a stamp in the virtualenv remembers their hash).
ensure_venv() {
    local kind=$1 files hash stamp python
    files=("$ROOT/requirements.txt")
    [ "$kind" = dev ] && files+=("$ROOT/requirements-dev.txt")
    hash=$(cat "${files[@]}" | sha256sum | cut -c1-64)
    stamp="$VENV/.otc-requirements-$kind"
    if [ ! -x "$VENV/bin/python" ]; then
        python=$(pick_python)
        say "Creating the virtualenv $VENV with $python"
        "$python" -m venv "$VENV"
    fi
    if [ "$(cat "$stamp" 2>/dev/null)" != "$hash" ]; then
        say "Installing ${files[-1]##*/} into $VENV"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "${files[-1]}"
        echo "$hash" >"$stamp"
        if [ "$kind" = dev ]; then  # the dev requirements include the runtime ones
            sha256sum <"$ROOT/requirements.txt" | cut -c1-64 >"$VENV/.otc-requirements-runtime"
        fi
    fi
}

# load_dotenv: export the KEY=value lines of .env, as the settings will read them.
load_dotenv() {
    if [ -f "$ROOT/.env" ]; then
        set -a
        # shellcheck disable=SC1091
        . "$ROOT/.env"
        set +a
    fi
}
