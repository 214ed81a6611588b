#!/usr/bin/env bash
# Run the test suite on the real PostgreSQL and Redis; arguments go to pytest.
#
# The tests default to postgres://postgres@127.0.0.1:5432/otc and redis://127.0.0.1:6379/15
# (otc/test_settings.py); DATABASE_URL and REDIS_URL in the environment take precedence.
# Browser tests drive Debian's Chromium (apt-get install chromium) through Playwright:
# no browser is ever downloaded.
set -euo pipefail
# shellcheck source=scripts/_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
cd "$ROOT"

ensure_venv dev
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
if [ -z "${OTC_CHROMIUM:-}" ]; then
    for candidate in /usr/bin/chromium /usr/bin/chromium-browser; do
        if [ -x "$candidate" ]; then
            export OTC_CHROMIUM=$candidate
            break
        fi
    done
fi
[ -n "${OTC_CHROMIUM:-}" ] || echo "warning: no Chromium found (apt-get install chromium): browser tests will fail" >&2

say "pytest $* (database ${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/otc}, redis ${REDIS_URL:-redis://127.0.0.1:6379/15})"
status=0
"$VENV/bin/pytest" "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "error: pytest collected no tests (exit 5): counted as a failure" >&2
fi
exit "$status"
