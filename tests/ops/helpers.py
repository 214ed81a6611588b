"""Running the project's own commands in a subprocess, with an environment of our choosing."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Set by otc/test_settings.py or by whoever runs the suite; a subprocess must not inherit them.
PROJECT_VARS = (
    "DJANGO_SETTINGS_MODULE",
    "DATABASE_URL",
    "REDIS_URL",
    "SECRET_KEY",
    "DEBUG",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "CELERY_TASK_ALWAYS_EAGER",
    "CELERY_QUEUE",
    "SECURE_SSL_REDIRECT",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_HSTS_SECONDS",
    "STATIC_ROOT",
    "MEDIA_ROOT",
    "EMAIL_URL",
)


def clean_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PROJECT_VARS}
    env.update(overrides)
    return env


PYTHON = sys.executable
