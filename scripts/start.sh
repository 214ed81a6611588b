#!/usr/bin/env bash
# Start OTC in one terminal: web, worker and scheduler together (Ctrl-C stops them all).
#
# Nothing configured (the embedded default): SQLite under var/, tasks run inside the web process,
# and one `celery worker -B --pool=solo` runs the periodic jobs through a broker kept in files under
# var/broker. With DATABASE_URL and REDIS_URL set (in the environment or .env): gunicorn, a Celery
# worker and Celery beat (django-celery-beat's DatabaseScheduler) on PostgreSQL and Redis.
#
# Environment: PORT (8000), HOST (127.0.0.1), SEED_DEMO (true: seed an empty database),
# WEB_CONCURRENCY (gunicorn workers), plus everything .env.example lists for the settings.
set -euo pipefail
# shellcheck source=scripts/_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
cd "$ROOT"

ensure_venv runtime
export PATH="$VENV/bin:$PATH"
load_dotenv
export PORT=${PORT:-8000} HOST=${HOST:-127.0.0.1}
# Links in e-mails and PDFs (the feedback page) point at this server unless set otherwise.
export OTC_PUBLIC_URL=${OTC_PUBLIC_URL:-http://$HOST:$PORT}
mkdir -p var "${STATIC_ROOT:-var/static}"

if [ -n "${DATABASE_URL:-}" ]; then
    if [ -z "${SECRET_KEY:-}" ]; then
        if [ ! -s var/secret_key ]; then
            say "Generating a SECRET_KEY into var/secret_key"
            (umask 077 && python -c 'import secrets; print(secrets.token_urlsafe(64))' >var/secret_key)
        fi
        SECRET_KEY=$(cat var/secret_key)
        export SECRET_KEY
    fi
    # Served over plain HTTP on this machine: no HTTPS redirect, cookies not HTTPS-only.
    # Behind a TLS proxy, set these to true (or leave them unset outside this script).
    export SECURE_SSL_REDIRECT=${SECURE_SSL_REDIRECT:-false}
    export SESSION_COOKIE_SECURE=${SESSION_COOKIE_SECURE:-false}
    export CSRF_COOKIE_SECURE=${CSRF_COOKIE_SECURE:-false}
fi

if [ -n "${REDIS_URL:-}" ]; then
    procfile=Procfile
    jobs="worker and beat on Redis"
else
    procfile=Procfile.embedded
    jobs="tasks in-process; periodic jobs by one worker on var/broker"
fi
database="SQLite (var/otc.sqlite3)"
[ -n "${DATABASE_URL:-}" ] && database="${DATABASE_URL%%://*} (DATABASE_URL)"

say "Migrating the database: $database"
python manage.py migrate --noinput
# The groups Finance clerk, Finance manager, Integrator and Admin, kept in step with the code.
python manage.py setup_roles --verbosity 0
if [ -n "${DATABASE_URL:-}" ] && [ "${DEBUG:-false}" != true ]; then
    # Hashed and compressed copies for WhiteNoise. That takes a while, so only when the packages
    # or the project's static files changed since the last run into the same STATIC_ROOT.
    static_root=${STATIC_ROOT:-var/static}
    stamp="$static_root $(
        {
            cat requirements.txt
            find . \( -path ./.venv -o -path ./var -o -path ./.git -o -path ./node_modules \) -prune \
                -o -path '*/static/*' -type f -printf '%p %s %T@\n'
        } | sort | sha256sum | cut -c1-64
    )"
    if [ -f "$static_root/staticfiles.json" ] && [ "$(cat var/collectstatic.stamp 2>/dev/null)" = "$stamp" ]; then
        say "Static files are up to date in $static_root"
    else
        say "Collecting static files into $static_root"
        python manage.py collectstatic --noinput --verbosity 0
        echo "$stamp" >var/collectstatic.stamp
    fi
fi
if [ "${SEED_DEMO:-true}" = true ]; then
    say "Seeding the demo company (only into an empty database)"
    # shellcheck disable=SC2086
    python manage.py seed_demo ${SEED_DEMO_ARGS:-}
fi

url="http://$HOST:$PORT/"
cat <<BANNER

  OTC is starting at $url
  Log in as demo / demo (the demo user seed_demo made), API docs at ${url}api/docs/
  Database: $database; jobs: $jobs
  Ctrl-C stops everything.

BANNER
exec honcho --no-colour -f "$procfile" start -p "$PORT"
