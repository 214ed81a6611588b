#!/bin/sh
# Entry point of the OTC image: `web` (migrate, collect static files, seed the demo company when
# SEED_DEMO=true, then gunicorn), `worker`, `beat`, or any other command as given.
set -eu

case "${1:-web}" in
web)
    python manage.py migrate --noinput
    # The groups Finance clerk, Finance manager, Integrator and Admin, kept in step with the code.
    python manage.py setup_roles --verbosity 0
    # The image carries the static files; collect them only into a STATIC_ROOT that lacks them.
    if [ ! -f "${STATIC_ROOT:-/data/static}/staticfiles.json" ]; then
        python manage.py collectstatic --noinput --verbosity 0
    fi
    if [ "${SEED_DEMO:-false}" = true ]; then
        python manage.py seed_demo
    fi
    exec gunicorn otc.wsgi --bind 0.0.0.0:8000 --workers "${WEB_CONCURRENCY:-3}" --access-logfile - --no-control-socket
    ;;
worker)
    exec celery -A otc worker --loglevel INFO --concurrency "${CELERY_CONCURRENCY:-2}"
    ;;
beat)
    # The schedule lives in the database (django-celery-beat): wait for the web container's migrations.
    until python manage.py migrate --check >/dev/null 2>&1; do
        echo "beat: waiting for the database migrations"
        sleep 3
    done
    exec celery -A otc beat --loglevel INFO --scheduler django_celery_beat.schedulers:DatabaseScheduler --pidfile=
    ;;
*)
    exec "$@"
    ;;
esac
