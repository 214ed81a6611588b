"""A configured deployment passes Django's deployment checks, and .env.example documents it."""

import re
import secrets
import subprocess

from .helpers import PYTHON, ROOT, clean_env

PRODUCTION = {
    "DATABASE_URL": "postgres://otc:secret@db.internal:5432/otc",
    "REDIS_URL": "redis://cache.internal:6379/0",
    "SECRET_KEY": secrets.token_urlsafe(64),
    "DEBUG": "false",
    "ALLOWED_HOSTS": "otc.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://otc.example.com",
    "EMAIL_URL": "smtp+tls://billing:secret@smtp.example.com:587",
}


def test_check_deploy_passes_with_a_production_environment():
    result = subprocess.run(
        [PYTHON, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=clean_env(DJANGO_SETTINGS_MODULE="otc.settings", **PRODUCTION),
        capture_output=True,
        text=True,
        timeout=120,
    )

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in output, output
    assert "WARNING" not in output, output


def test_a_configured_deployment_refuses_to_start_without_a_secret_key():
    env = clean_env(DJANGO_SETTINGS_MODULE="otc.settings", **PRODUCTION)
    del env["SECRET_KEY"]
    result = subprocess.run(
        [PYTHON, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )

    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_env_example_documents_every_variable_the_settings_read():
    settings = (ROOT / "otc" / "settings.py").read_text()
    read = set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z][A-Z0-9_]+)"', settings))
    read |= set(re.findall(r'"([A-Z][A-Z0-9_]+)"\s+(?:not\s+)?in\s+env\b', settings))
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))

    assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "EMAIL_URL"} <= read
    assert read - documented == set(), "add these to .env.example"
