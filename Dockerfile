# One image for every OTC process: web (gunicorn), worker and beat (Celery).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# WeasyPrint renders invoice PDFs with Pango and HarfBuzz; DejaVu is the font the templates use.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b libharfbuzz-subset0 \
        libjpeg62-turbo libopenjp2-7 libffi8 shared-mime-info fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 --shell /usr/sbin/nologin otc
WORKDIR /app

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY --chown=otc:otc . .
RUN mkdir -p /app/var /data/media /data/static && chown -R otc:otc /app/var /data

USER otc
ENV STATIC_ROOT=/data/static \
    MEDIA_ROOT=/data/media
# Hashed and compressed static files are part of the image (collectstatic reads no database).
RUN DATABASE_URL=postgres://build@localhost/build REDIS_URL=redis://localhost:6379/0 SECRET_KEY=build-only \
    python manage.py collectstatic --noinput --verbosity 0
EXPOSE 8000
ENTRYPOINT ["/app/scripts/docker-entrypoint.sh"]
CMD ["web"]
