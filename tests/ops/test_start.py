"""`make start` starts the whole system: the web answers and the demo login works, the worker and
the scheduler come up, and the worker renders the seeded invoices' PDFs. On the embedded default
and on PostgreSQL + Redis, each from a fresh copy of the source tree."""

import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import psycopg2
import pytest
from django.conf import settings

from .helpers import ROOT, clean_env

pytestmark = pytest.mark.slow

COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "var", ".env", "node_modules", "__pycache__", ".*_cache", "test-artifacts", "media", "staticfiles"
)
SMALL_SEED = "--customers 3 --months 2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Started:
    """`make start` running in its own process group, its output in a log file."""

    def __init__(self, tree: Path, env: dict[str, str]):
        self.tree = tree
        self.url = f"http://127.0.0.1:{env['PORT']}/"
        self.log_path = tree / "start.log"
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                ["make", "start"], cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, what: str, predicate, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"make start exited ({self.process.returncode}) before {what}:\n{self.log[-6000:]}")
            if predicate():
                return
            time.sleep(1)
        pytest.fail(f"no {what} within {timeout} s:\n{self.log[-6000:]}")

    def get(self, path: str) -> int:
        try:
            with urllib.request.urlopen(self.url + path.lstrip("/"), timeout=5) as response:  # noqa: S310 -- http://127.0.0.1
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return 0

    def pdfs(self) -> list[Path]:
        return list((self.tree / "var" / "media").rglob("*.pdf"))

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def log_in(url: str, username: str, password: str) -> str:
    """Log in through the login form as a person would; return the page landed on."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    form = opener.open(url + "accounts/login/", timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    data = urllib.parse.urlencode({"csrfmiddlewaretoken": token, "username": username, "password": password})
    with opener.open(url + "accounts/login/", data=data.encode(), timeout=10) as response:
        assert response.status == 200
        return response.url


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    dest = tmp_path / "otc"
    shutil.copytree(ROOT, dest, ignore=COPY_IGNORE)
    return dest


@pytest.fixture
def start(tree):
    started: list[Started] = []

    def run(**env: str) -> Started:
        base = clean_env(OTC_VENV=sys.prefix, PORT=str(free_port()), SEED_DEMO_ARGS=SMALL_SEED)
        started.append(Started(tree, {**base, **env}))
        return started[-1]

    yield run
    for s in started:
        s.stop()


def check_running(app: Started) -> None:
    app.wait_for("login page", lambda: app.get("/accounts/login/") == 200, timeout=240)
    assert "Demo login: demo / demo" in app.log
    assert app.url in app.log, "the URL is printed"
    landed = log_in(app.url, "demo", "demo")
    assert "/accounts/login/" not in landed, "the demo login is accepted"
    app.wait_for("worker ready", lambda: re.search(r"celery@\S+ ready", app.log), timeout=60)
    app.wait_for("beat", lambda: "beat: Starting" in app.log, timeout=60)
    app.wait_for("a PDF rendered by the worker", lambda: app.pdfs(), timeout=120)


def test_make_start_on_the_embedded_default(start):
    app = start()

    check_running(app)
    assert (app.tree / "var" / "otc.sqlite3").exists()
    with sqlite3.connect(app.tree / "var" / "otc.sqlite3") as db:
        groups = {name for (name,) in db.execute("SELECT name FROM auth_group")}
    assert groups >= {"Finance clerk", "Finance manager", "Integrator", "Admin"}, "make start sets up the roles"
    assert not (app.tree / "control").exists(), "the file broker keeps everything under var/"


@pytest.fixture
def start_database():
    db = settings.DATABASES["default"]
    name = f"otc_start_{os.getpid()}"
    dsn = {"host": db["HOST"], "port": db["PORT"] or 5432, "user": db["USER"], "password": db["PASSWORD"]}
    admin = psycopg2.connect(dbname="postgres", **dsn)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute(f'CREATE DATABASE "{name}"')
    user = f"{db['USER']}:{db['PASSWORD']}" if db["PASSWORD"] else db["USER"]
    yield f"postgres://{user}@{db['HOST']}:{dsn['port']}/{name}"
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def test_make_start_on_postgres_and_redis(start, start_database):
    app = start(
        DATABASE_URL=start_database,
        REDIS_URL=settings.REDIS_URL,
        CELERY_QUEUE=f"otc-start-{os.getpid()}",  # not the queue of the suite's own workers
    )

    check_running(app)
    assert (app.tree / "var" / "secret_key").stat().st_mode & 0o077 == 0, "the generated key is private"
    assert "celery beat" in app.log.lower() or "beat: Starting" in app.log
    assert "DatabaseScheduler" in app.log
