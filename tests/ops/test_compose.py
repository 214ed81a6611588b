"""docker-compose.yml is valid and describes the whole system from one image."""

import shutil
import subprocess

import pytest
import yaml

from .helpers import ROOT, clean_env

COMPOSE = shutil.which("docker-compose")
pytestmark = pytest.mark.skipif(
    COMPOSE is None, reason="docker-compose is not installed (apt-get install docker-compose)"
)


def compose(*args: str) -> subprocess.CompletedProcess:
    # The clean environment keeps the suite's settings out of the interpolation.
    return subprocess.run(
        [COMPOSE, "--project-directory", str(ROOT), "-f", str(ROOT / "docker-compose.yml"), *args],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_compose_file_is_valid():
    result = compose("config", "-q")

    assert result.returncode == 0, result.stderr


def test_compose_runs_web_worker_and_beat_on_postgres_and_redis():
    result = compose("config")
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]

    assert {"postgres", "redis", "web", "worker", "beat"} <= set(services)
    assert services["postgres"]["image"].startswith("postgres:15")
    assert services["redis"]["image"].startswith("redis:7")
    assert "healthcheck" in services["postgres"] and "healthcheck" in services["redis"]
    app = [services[name] for name in ("web", "worker", "beat")]
    assert {s["image"] for s in app} == {"otc:latest"}, "one image for every process"
    assert [s["command"] for s in app] == [["web"], ["worker"], ["beat"]]
    for service in app:
        env = service["environment"]
        assert env["DATABASE_URL"].startswith("postgres://") and "@postgres:" in env["DATABASE_URL"]
        assert env["REDIS_URL"].startswith("redis://redis:")
        assert env["SECRET_KEY"] and env["DEBUG"] == "false"
        assert {"postgres", "redis"} <= set(service["depends_on"])
    assert any("8000" in str(port) for port in services["web"]["ports"])
