"""Order-creation benchmark: API order entry against "the limit" on the same server, same run.

Usage (from the repository root, PostgreSQL on 127.0.0.1:5432 as user postgres):

    .venv/bin/python bench/orders.py --orders 100000 --clients 8 --requests 2000

What it does:
1. (re)creates its own database `otc_bench_orders` (--db), migrates it and bulk-loads --orders orders
   with 1-5 lines each (plus customers, products, one event per order) with COPY;
   --reuse-db keeps an already loaded database instead;
2. creates an API user and token, starts gunicorn (otc.wsgi with bench.settings, which only adds the
   bare view's URL) on a free loopback port: 4 sync workers by default (2 per core on the 2-core
   bench machine: the order path is CPU-bound Python, so processes, not threads; one waits on the
   database while another computes), or gthread with --worker-class gthread --threads N;
3. drives POST /api/v1/orders/ (5 lines per order) from --clients HTTP/1.1 clients (threads with
   http.client; keep-alive where the server keeps it: gthread does, sync workers close after each
   response and the client reconnects), --requests requests in all or --duration seconds at most,
   after a --warmup;
4. drives the bare view POST /bench/bare-order/ (bench/bare_views.py: the same order and line rows,
   one INSERT + one executemany, nothing else) the same way;
5. prints throughput (orders/s), p50, p95, p99 of each, the CPU seconds per order spent by the gunicorn
   workers, the PostgreSQL backends and the clients (read from /proc: on a shared machine they move
   less than throughput), checks every 201 really stored its order and 5 lines, prints PASS/MISS
   against the targets (API throughput >= 50 % of the limit, API p50 <= 20 ms) and the queries one
   API order creation runs (--show-sql to list them).

API and bare alternate in --rounds rounds so that a burst of other load hits both alike.

Loopback only; gunicorn is stopped at the end; the bench database is kept for inspection
(dropped by the next run unless --reuse-db).
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, this file's folder comes first on sys.path and `orders` would be this file,
# not the orders app.
sys.path[0] = str(ROOT)

import argparse  # noqa: E402
import http.client  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

N_CUSTOMERS = 1000
N_PRODUCTS = 300
LINES_PER_API_ORDER = 5
TARGET_RATIO = 0.50
TARGET_P50_MS = 20.0


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=100_000, help="orders to bulk-load first (default 100000)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients (default 8)")
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per endpoint (default 2000)")
    parser.add_argument("--duration", type=float, default=120, help="at most this many seconds per endpoint")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured requests per client and endpoint")
    parser.add_argument(
        "--rounds", type=int, default=4, help="alternate API and bare this many times (shares out machine noise)"
    )
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (default 4)")
    parser.add_argument("--worker-class", default="sync", choices=["sync", "gthread"], help="default sync")
    parser.add_argument("--threads", type=int, default=1, help="threads per gthread worker")
    parser.add_argument("--db", default="otc_bench_orders", help="bench database, dropped and recreated")
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432"))
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/8"))
    parser.add_argument("--reuse-db", action="store_true", help="keep the database if it is already loaded")
    parser.add_argument("--only", choices=["api", "bare"], help="drive one endpoint only")
    parser.add_argument("--show-sql", action="store_true", help="list the queries of one API order creation")
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args()


# --- Database ------------------------------------------------------------------------------------


def admin_connection(pg_url: str):
    import psycopg2

    parts = urlsplit(pg_url)
    host, port, user = parts.hostname or "127.0.0.1", parts.port or 5432, parts.username or "postgres"
    conn = psycopg2.connect(host=host, port=port, user=user, dbname="postgres")
    conn.autocommit = True
    return conn


def database_url(args) -> str:
    parts = urlsplit(args.pg)
    return f"postgres://{parts.username or 'postgres'}@{parts.hostname or '127.0.0.1'}:{parts.port or 5432}/{args.db}"


def database_exists(args) -> bool:
    conn = admin_connection(args.pg)
    with conn.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [args.db])
        found = cursor.fetchone() is not None
    conn.close()
    return found


def recreate_database(args) -> None:
    if not args.db.startswith("otc_bench"):
        raise SystemExit(f"Refusing to drop {args.db!r}: the bench database name must start with otc_bench.")
    conn = admin_connection(args.pg)
    with conn.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{args.db}"')
    conn.close()


def setup_django(args) -> dict:
    env = {
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": database_url(args),
        "REDIS_URL": args.redis,
        "CELERY_QUEUE": "otc-bench",
        "SECRET_KEY": "bench-secret-key-not-for-production-0123456789abcdefghijklmnop",
        "DEBUG": "false",
        "SECURE_SSL_REDIRECT": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    import django

    django.setup()
    return env


def cents(amount: int) -> str:
    return f"{amount // 100}.{amount % 100:02d}"


def load(n_orders: int, rng: random.Random) -> None:
    """Master data by the ORM, then orders, lines and events by COPY (consistent totals)."""
    from decimal import Decimal

    from django.db import connection, transaction

    from billing.models import Customer, PaymentTerms, TaxRate
    from orders.models import Product
    from orders.services import order_number

    with transaction.atomic():
        rates = [
            TaxRate.objects.create(name="Standard 20%", rate=Decimal("20.00")),
            TaxRate.objects.create(name="Reduced 5.5%", rate=Decimal("5.50"), category="reduced"),
        ]
        terms = PaymentTerms.objects.create(name="Net 30", due_days=30)
        customers = Customer.objects.bulk_create(
            Customer(
                code=f"B{i:05d}",
                name=f"Bench customer {i}",
                legal_name=f"Bench customer {i} SA",
                email=f"ap{i}@bench.example",
                currency="EUR",
                payment_terms=terms,
                billing_line1=f"{i} Rue du Banc",
                billing_city="Lyon",
                billing_country="FR",
            )
            for i in range(N_CUSTOMERS)
        )
        products = Product.objects.bulk_create(
            Product(
                sku=f"SKU{i:05d}",
                name=f"Bench product {i}",
                unit_price=Decimal(rng.randint(100, 50_000)) / 100,
                tax_rate=rates[1] if i % 5 == 0 else rates[0],
            )
            for i in range(N_PRODUCTS)
        )
    basis_points = {rates[0].pk: 2000, rates[1].pk: 550}
    product_rows = [(p.pk, p.name, int(p.unit_price * 100), p.tax_rate_id) for p in products]
    customer_ids = [c.pk for c in customers]
    statuses = ["draft"] * 2 + ["confirmed"] * 2 + ["fulfilled"] * 4 + ["cancelled"] * 2
    channels = ["ui"] * 6 + ["api"] * 3 + ["import"]
    today = datetime.now(UTC).replace(microsecond=0)

    orders, lines, events = io.StringIO(), io.StringIO(), io.StringIO()
    line_id = 0
    for order_id in range(1, n_orders + 1):
        created = today - timedelta(days=rng.randint(0, 730), seconds=rng.randint(0, 86_399))
        by_rate: dict[int, int] = {}
        for position in range(1, rng.randint(1, 5) + 1):
            product_id, name, price, rate_id = product_rows[rng.randrange(N_PRODUCTS)]
            quantity = rng.randint(1, 10)
            net = price * quantity
            by_rate[rate_id] = by_rate.get(rate_id, 0) + net
            line_id += 1
            rate = basis_points[rate_id]
            category = "standard" if rate == 2000 else "reduced"
            lines.write(
                f"{line_id}\t{order_id}\t{position}\t{product_id}\t{name}\t{quantity}\tunit\t{cents(price)}\t0"
                f"\t{rate_id}\t{rate // 100}.{rate % 100:02d}\t{category}\t{cents(net)}\n"
            )
        net_total = sum(by_rate.values())
        tax_total = sum((net * basis_points[rate_id] + 5000) // 10_000 for rate_id, net in by_rate.items())
        status = statuses[order_id % len(statuses)]
        confirmed = created.isoformat() if status in ("confirmed", "fulfilled") else r"\N"
        fulfilled = created.isoformat() if status == "fulfilled" else r"\N"
        orders.write(
            f"{order_id}\t{order_number(order_id)}\t{rng.choice(customer_ids)}\tPO-{order_id}\t{created.date()}\tEUR"
            f"\t{status}\t{cents(net_total)}\t{cents(tax_total)}\t{cents(net_total + tax_total)}"
            f"\t{channels[order_id % len(channels)]}\t{(created - timedelta(seconds=rng.randint(20, 600))).isoformat()}"
            f"\t{confirmed}\t{fulfilled}\t\t{created.isoformat()}\n"
        )
        events.write(f"{order_id}\t{order_id}\t\tdraft\t\t{created.isoformat()}\n")
    for buffer in (orders, lines, events):
        buffer.seek(0)
    with connection.cursor() as cursor:
        cursor.copy_expert(
            "COPY orders_order (id, number, customer_id, customer_reference, order_date, currency, status, net_total, "
            "tax_total, gross_total, channel, entry_started_at, confirmed_at, fulfilled_at, notes, created_at) "
            "FROM STDIN",
            orders,
        )
        cursor.copy_expert(
            "COPY orders_orderline (id, order_id, position, product_id, description, quantity, unit, unit_price, "
            "discount_percent, tax_rate_id, tax_percent, tax_category, net_amount) FROM STDIN",
            lines,
        )
        cursor.copy_expert(
            "COPY orders_orderevent (id, order_id, from_status, to_status, note, created_at) FROM STDIN", events
        )
        for table in ("orders_order", "orders_orderline", "orders_orderevent"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        cursor.execute("ANALYZE")
    print(f"  loaded {n_orders} orders, {line_id} lines, {N_CUSTOMERS} customers, {N_PRODUCTS} products")


def api_token() -> tuple[str, int]:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    out = io.StringIO()
    call_command("create_api_token", "bench-bot", stdout=out, stderr=io.StringIO())
    user = get_user_model().objects.get(username="bench-bot")
    return out.getvalue().strip(), user.pk


# --- Server --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(args, env: dict, port: int, log_path: str) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "otc.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(args.workers),
        "--worker-class",
        args.worker_class,
        "--threads",
        str(args.threads),
        "--keep-alive",
        "30",
        "--timeout",
        "60",
        "--log-level",
        "warning",
        "--worker-tmp-dir",
        "/dev/shm",  # noqa: S108 - gunicorn's heartbeat files, kept off the disk
    ]
    log = open(log_path, "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited with {proc.returncode}; see {log_path}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/bench/bare-order/")
            if conn.getresponse().status == 405:
                conn.close()
                return proc
        except OSError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit(f"gunicorn did not answer within 60 s; see {log_path}")


# --- CPU accounting ------------------------------------------------------------------------------
# Throughput on this shared 2-core machine swings with whatever else runs; CPU seconds spent per
# order by the gunicorn workers and by the PostgreSQL backends of the bench database do not, much.

TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float | None:
    """utime + stime of a process, in seconds (None if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def children_of(ppid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    if int(handle.read().rsplit(")", 1)[1].split()[1]) == ppid:
                        pids.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return pids


class CpuProbe:
    def __init__(self, server_pid: int, args):
        self.server_pid = server_pid
        self.db = args.db
        self.conn = admin_connection(args.pg)

    def snapshot(self) -> dict:
        with self.conn.cursor() as cursor:
            cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [self.db])
            backends = [row[0] for row in cursor.fetchall()]
        pids = [("app", pid) for pid in children_of(self.server_pid)] + [("db", pid) for pid in backends]
        taken = {key: proc_cpu(key[1]) for key in pids}
        taken[("client", os.getpid())] = time.process_time()
        return {key: value for key, value in taken.items() if value is not None}

    @staticmethod
    def spent(before: dict, after: dict) -> dict:
        totals = {"app": 0.0, "db": 0.0, "client": 0.0}
        for key, value in after.items():
            totals[key[0]] += value - before.get(key, 0.0)
        return totals


# --- Load driver ---------------------------------------------------------------------------------


@dataclass
class Run:
    name: str
    latencies: list = field(default_factory=list)
    statuses: dict = field(default_factory=dict)
    wall: float = 0.0
    created_ids: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    cpu: dict = field(default_factory=lambda: {"app": 0.0, "db": 0.0, "client": 0.0})

    @property
    def ok(self) -> int:
        return self.statuses.get(201, 0)

    @property
    def throughput(self) -> float:
        return self.ok / self.wall if self.wall else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def cpu_ms(self, part: str | None = None) -> float:
        spent = sum(self.cpu.values()) if part is None else self.cpu[part]
        return spent / len(self.latencies) * 1000 if self.latencies else float("nan")

    def cpu_line(self) -> str:
        return (
            f"{self.name:<5} CPU per order: app {self.cpu_ms('app'):5.2f} ms + db {self.cpu_ms('db'):5.2f} ms"
            f" + client {self.cpu_ms('client'):5.2f} ms = {self.cpu_ms():5.2f} ms"
        )

    def line(self) -> str:
        bad = sum(n for code, n in self.statuses.items() if code != 201)
        return (
            f"{self.name:<5} {self.ok:>6} created {bad:>4} failed {self.wall:7.1f} s  {self.throughput:8.1f} orders/s"
            f"  p50 {self.pct(0.50):6.1f} ms  p95 {self.pct(0.95):6.1f} ms  p99 {self.pct(0.99):6.1f} ms"
            f"  mean {statistics.fmean(self.latencies) * 1000 if self.latencies else float('nan'):6.1f} ms"
        )


def order_bodies(rng: random.Random, n: int) -> list[bytes]:
    from billing.models import Customer
    from orders.models import Product

    customers = list(Customer.objects.values_list("pk", flat=True))
    products = list(Product.objects.values_list("pk", flat=True))
    return [
        json.dumps(
            {
                "customer": rng.choice(customers),
                "customer_reference": f"BENCH-{i}",
                "lines": [
                    {"product": pk, "quantity": str(rng.randint(1, 20))}
                    for pk in rng.sample(products, LINES_PER_API_ORDER)
                ],
            }
        ).encode()
        for i in range(n)
    ]


def drive(name, port, path, headers, bodies, args, *, requests, warmup, probe: CpuProbe) -> Run:
    run = Run(name)
    lock = threading.Lock()
    issued = 0
    barrier = threading.Barrier(args.clients + 1)
    per_thread: list[list] = [[] for _ in range(args.clients)]

    def post(conn, body):
        conn.request("POST", path, body, headers)
        response = conn.getresponse()
        return response.status, response.read()

    def client(index: int) -> None:
        nonlocal issued
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for w in range(warmup):
            post(conn, bodies[(index * warmup + w) % len(bodies)])
        barrier.wait()
        deadline = time.monotonic() + args.duration
        while True:
            with lock:
                if issued >= requests or time.monotonic() > deadline:
                    break
                n = issued
                issued += 1
            body = bodies[n % len(bodies)]
            started = time.perf_counter()
            try:
                status, payload = post(conn, body)
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                per_thread[index].append((time.perf_counter() - started, 0, repr(exc)))
                continue
            per_thread[index].append((time.perf_counter() - started, status, payload))
        conn.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started, cpu_before = time.perf_counter(), probe.snapshot()
    for thread in threads:
        thread.join()
    run.wall = time.perf_counter() - started
    run.cpu = probe.spent(cpu_before, probe.snapshot())
    for rows in per_thread:
        for latency, status, payload in rows:
            run.latencies.append(latency)
            run.statuses[status] = run.statuses.get(status, 0) + 1
            if status == 201:
                run.created_ids.append(json.loads(payload)["id"])
            elif len(run.errors) < 3:
                run.errors.append((status, payload[:300]))
    return run


def merge(runs: list[Run]) -> Run:
    total = Run(runs[0].name)
    for run in runs:
        total.latencies += run.latencies
        total.created_ids += run.created_ids
        total.errors += run.errors[: 3 - len(total.errors)]
        total.wall += run.wall
        for part, spent in run.cpu.items():
            total.cpu[part] += spent
        for code, n in run.statuses.items():
            total.statuses[code] = total.statuses.get(code, 0) + n
    return total


def verify(run: Run) -> str:
    """Every 201 stored its order with 5 lines and consistent totals."""
    from django.db.models import Count, F

    from orders.models import Order

    stored = Order.objects.filter(pk__in=run.created_ids).annotate(n=Count("lines"))
    good = stored.filter(n=LINES_PER_API_ORDER, gross_total=F("net_total") + F("tax_total")).count()
    return f"{good}/{len(run.created_ids)} orders stored with {LINES_PER_API_ORDER} lines"


def queries_per_api_order(token: str, body: bytes, show: bool) -> int:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Token {token}")
    client.post("/api/v1/orders/", body, content_type="application/json")  # warm caches
    with CaptureQueriesContext(connection) as queries:
        response = client.post("/api/v1/orders/", body, content_type="application/json")
    assert response.status_code == 201, response.content
    if show:
        for query in queries.captured_queries:
            print(f"    {query['time']}s  {query['sql'][:160]}")
    return len(queries)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> int:
    args = parse_args()
    rng = random.Random(args.seed)
    started = time.monotonic()
    reuse = args.reuse_db and database_exists(args)
    if not reuse:
        print(f"Creating database {args.db} ...")
        recreate_database(args)
    env = setup_django(args)
    from django.core.management import call_command
    from django.db import connection

    from orders.models import Order

    if not reuse:
        call_command("migrate", verbosity=0)
        t0 = time.monotonic()
        load(args.orders, rng)
        print(f"  migrate + load in {time.monotonic() - started:.1f} s (load {time.monotonic() - t0:.1f} s)")
    else:
        call_command("migrate", verbosity=0)
        print(f"Reusing {args.db}: {Order.objects.count()} orders")
    token, _ = api_token()
    bodies = order_bodies(rng, 1000)
    connection.close()

    port = free_port()
    log_path = os.path.join(tempfile.gettempdir(), f"bench-orders-gunicorn-{port}.log")
    workers = f"{args.workers} {args.worker_class} workers" + (
        f" x {args.threads} threads" if args.worker_class == "gthread" else ""
    )
    print(f"gunicorn on 127.0.0.1:{port}, {workers}; {args.clients} clients; log {log_path}")
    server = start_gunicorn(args, env, port, log_path)
    json_headers = {"Content-Type": "application/json", "Accept": "application/json"}
    endpoints = {
        "api": ("/api/v1/orders/", {**json_headers, "Authorization": f"Token {token}"}),
        "bare": ("/bench/bare-order/", json_headers),
    }
    chunks: dict[str, list[Run]] = {name: [] for name in endpoints if args.only in (None, name)}
    probe = CpuProbe(server.pid, args)
    try:
        for round_ in range(args.rounds):
            for name, chunk in chunks.items():
                path, headers = endpoints[name]
                share = args.requests // args.rounds + (1 if round_ < args.requests % args.rounds else 0)
                warmup = args.warmup if round_ == 0 else 0
                chunk.append(drive(name, port, path, headers, bodies, args, requests=share, warmup=warmup, probe=probe))
                print(f"  round {round_ + 1}/{args.rounds} {chunk[-1].line()}")
    finally:
        server.terminate()
        server.wait(timeout=30)

    runs = {name: merge(chunk) for name, chunk in chunks.items()}
    print(f"load average while running: {' '.join(f'{x:.1f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    for run in runs.values():
        print(run.line())
    for run in runs.values():
        print(run.cpu_line())
    for run in runs.values():
        print(f"  {run.name}: {verify(run)}")
        for status, payload in run.errors:
            print(f"  {run.name}: HTTP {status}: {payload!r}")
    print(f"  queries per API order creation: {queries_per_api_order(token, bodies[0], args.show_sql)}")
    failures = sum(n for run in runs.values() for code, n in run.statuses.items() if code != 201)
    if "api" in runs and "bare" in runs:
        ratio = runs["api"].throughput / runs["bare"].throughput if runs["bare"].throughput else 0.0
        print(
            f"throughput API / limit = {runs['api'].throughput:.1f} / {runs['bare'].throughput:.1f}"
            f" = {ratio:.0%}  (target >= {TARGET_RATIO:.0%})  {verdict(ratio >= TARGET_RATIO)}"
        )
        cpu_ratio = runs["bare"].cpu_ms() / runs["api"].cpu_ms()
        print(f"CPU per order, limit / API = {cpu_ratio:.0%}  (moves less with other load than throughput does)")
    if "api" in runs:
        p50 = runs["api"].pct(0.50)
        print(f"p50 API = {p50:.1f} ms  (target <= {TARGET_P50_MS:.0f} ms)  {verdict(p50 <= TARGET_P50_MS)}")
    print(f"errors = {failures}  {verdict(failures == 0)}")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
