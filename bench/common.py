"""Helpers shared by bench/pdf.py and bench/billing_run.py: the bench's own database, Django set up
on it, bulk-loaded fulfilled orders, a real Celery worker in a subprocess, /proc readings (worker
RSS, machine load, what else is running) and PASS/MISS lines. Never imported by the product."""

import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
DEFAULT_REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/9")
EXEMPT_NOTE = "VAT exempt, article 261-4-4° of the French General Tax Code"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- Database and Django -------------------------------------------------------------------------


def admin_connection(pg_url: str):
    import psycopg2

    parts = urlsplit(pg_url)
    conn = psycopg2.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "postgres",
        dbname="postgres",
    )
    conn.autocommit = True
    return conn


def database_url(pg_url: str, db: str) -> str:
    parts = urlsplit(pg_url)
    return f"postgres://{parts.username or 'postgres'}@{parts.hostname or '127.0.0.1'}:{parts.port or 5432}/{db}"


def recreate_database(pg_url: str, db: str) -> None:
    if not db.startswith("otc_bench"):
        raise SystemExit(f"Refusing to drop {db!r}: a bench database name starts with otc_bench.")
    conn = admin_connection(pg_url)
    with conn.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{db}"')
    conn.close()


def bench_env(*, db_url: str, redis_url: str, queue: str, media_root: str) -> dict:
    """Environment for the bench process and its worker: the product's settings (otc.settings) on
    the bench's own database, Redis db and queue."""
    return {
        "DJANGO_SETTINGS_MODULE": "otc.settings",
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "CELERY_QUEUE": queue,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "MEDIA_ROOT": media_root,
        "SECRET_KEY": "bench-secret-key-not-for-production-0123456789abcdefghijklmnop",
        "DEBUG": "false",
        "SECURE_SSL_REDIRECT": "false",
        "EMAIL_URL": "dummymail://",
        "LOG_LEVEL": "WARNING",
    }


def setup_django(env: dict) -> None:
    os.environ.update(env)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def migrate() -> float:
    from django.core.management import call_command

    started = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    return time.perf_counter() - started


# --- Data ----------------------------------------------------------------------------------------


def _q(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def load_fulfilled_orders(
    *,
    n_orders: int,
    lines_per_order: int = 5,
    n_customers: int = 1000,
    cycles: tuple[tuple[str, float], ...] = (("per_order", 1.0),),
    exempt_every: int = 0,
    days_back: int = 60,
    seed: int = 7,
    batch: int = 5000,
) -> dict:
    """Customers (with a contact, a VAT id and terms with penalties), products at 20 % and 5.5 %
    (and an exempt service when `exempt_every`), then `n_orders` fulfilled orders of
    `lines_per_order` lines, by bulk_create in batches, totals computed as the services do.
    `cycles` gives the share of customers per billing cycle."""
    from django.db import connection, transaction

    from billing.models import Contact, Customer, PaymentTerms, TaxRate
    from orders.models import Order, OrderLine, Product
    from orders.services import order_number

    rng = random.Random(seed)
    with transaction.atomic():
        standard = TaxRate.objects.create(name="Standard 20%", rate=Decimal("20.00"))
        reduced = TaxRate.objects.create(name="Reduced 5.5%", rate=Decimal("5.50"), category="reduced")
        exempt = TaxRate.objects.create(
            name="Exempt training", rate=Decimal("0"), category="exempt", legal_note=EXEMPT_NOTE
        )
        terms = PaymentTerms.objects.create(
            name="Net 30, 2/10",
            due_days=30,
            discount_percent=Decimal("2"),
            discount_days=10,
            accepted_methods=["bank_transfer", "sepa_direct_debit", "card"],
            grace_days=5,
            annual_interest_rate=Decimal("10.15"),
            fixed_fee=Decimal("40.00"),
            penalty_cap_percent=Decimal("20"),
        )
        plan = []
        for cycle, share in cycles:
            plan += [cycle] * round(share * n_customers)
        plan = (plan + [cycles[0][0]] * n_customers)[:n_customers]
        rng.shuffle(plan)
        customers = Customer.objects.bulk_create(
            Customer(
                code=f"B{i:06d}",
                name=f"Bench customer {i}",
                legal_name=f"Bench Customer {i} SAS",
                tax_id=f"FR{i % 97:02d}{100000000 + i}",
                email=f"ap{i}@customer{i}.example",
                phone=f"+33 4 72 {i % 100:02d} {i // 100 % 100:02d} 00",
                currency="EUR",
                payment_terms=terms,
                billing_cycle=plan[i],
                billing_line1=f"{i % 200 + 1} Rue du Commerce",
                billing_postal_code=f"{69001 + i % 9}",
                billing_city="Lyon",
                billing_country="FR",
            )
            for i in range(n_customers)
        )
        Contact.objects.bulk_create(
            Contact(
                customer=c,
                name=f"Accounts Payable {i}",
                email=f"payables@customer{i}.example",
                phone="+33 6 11 22 33 44",
                role="Accounts payable",
            )
            for i, c in enumerate(customers)
        )
        products = Product.objects.bulk_create(
            Product(
                sku=f"SKU-{i:04d}",
                name=f"Office product {i}, {['black', 'white', 'oak', 'steel'][i % 4]} finish",
                unit_price=Decimal(rng.randint(150, 40_000)) / 100,
                tax_rate=reduced if i % 5 == 0 else standard,
            )
            for i in range(300)
        )
        course = Product.objects.create(
            sku="TRAIN-1D", name="Training course, one day", unit="day", unit_price=Decimal("650.00"), tax_rate=exempt
        )

    now = datetime.now(UTC).replace(microsecond=0)
    loaded_lines = 0
    for start in range(0, n_orders, batch):
        count = min(batch, n_orders - start)
        orders, specs = [], []
        # Ids from the order sequence, numbered as order_create numbers them (SO- and the id): orders
        # entered later, whose number comes from the same sequence, never clash with these.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence('orders_order', 'id')) FROM generate_series(1, %s)", [count]
            )
            ids = [row[0] for row in cursor.fetchall()]
        for k in range(start, start + count):
            customer = customers[rng.randrange(n_customers)]
            fulfilled = now - timedelta(days=rng.randint(1, days_back), seconds=rng.randint(0, 86_399))
            picked = rng.sample(products, lines_per_order)
            if exempt_every and k % exempt_every == 0:
                picked[-1] = course
            lines, by_rate = [], {}
            for position, product in enumerate(picked, start=1):
                quantity = Decimal(rng.randint(1, 12))
                net = _q(quantity * product.unit_price)
                rate = product.tax_rate
                by_rate[(rate.rate, rate.category)] = by_rate.get((rate.rate, rate.category), Decimal(0)) + net
                lines.append((position, product, quantity, net))
            net_total = sum(by_rate.values(), Decimal(0))
            tax_total = sum((_q(v * r / 100) for (r, _c), v in by_rate.items()), Decimal(0))
            orders.append(
                Order(
                    id=ids[k - start],
                    number=order_number(ids[k - start]),
                    customer=customer,
                    customer_reference=f"PO-{k + 1}",
                    order_date=(fulfilled - timedelta(days=2)).date(),
                    currency="EUR",
                    status="fulfilled",
                    net_total=net_total,
                    tax_total=tax_total,
                    gross_total=net_total + tax_total,
                    channel="import",
                    entry_started_at=fulfilled - timedelta(days=2, minutes=3),
                    confirmed_at=fulfilled - timedelta(days=2),
                    fulfilled_at=fulfilled,
                )
            )
            specs.append(lines)
        with transaction.atomic():
            Order.objects.bulk_create(orders, batch_size=batch)
            rows = [
                OrderLine(
                    order=order,
                    position=position,
                    product=product,
                    description=product.name,
                    quantity=quantity,
                    unit=product.unit,
                    unit_price=product.unit_price,
                    tax_rate=product.tax_rate,
                    tax_percent=product.tax_rate.rate,
                    tax_category=product.tax_rate.category,
                    net_amount=net,
                )
                for order, lines in zip(orders, specs, strict=True)
                for position, product, quantity, net in lines
            ]
            OrderLine.objects.bulk_create(rows, batch_size=batch)
            loaded_lines += len(rows)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return {"orders": n_orders, "lines": loaded_lines, "customers": n_customers, "products": len(products) + 1}


# --- Celery worker -------------------------------------------------------------------------------


def start_worker(
    env: dict, *, queues: str, concurrency: int, log_path: str, name: str, extra: list[str] | None = None
) -> subprocess.Popen:
    """`celery -A otc worker --pool prefork --concurrency N -Q queues`, waited for until it answers a ping."""
    from otc.celery import app

    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "otc",
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        str(concurrency),
        "-Q",
        queues,
        "-n",
        f"{name}-{os.getpid()}@%h",
        "-l",
        "WARNING",
        *(extra or []),
    ]
    log = open(log_path, "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    destination = [cmd[cmd.index("-n") + 1].replace("%h", os.uname().nodename)]
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.close()
            tail = "".join(Path(log_path).read_text().splitlines(keepends=True)[-15:])
            raise SystemExit(f"Celery worker exited with {proc.returncode}; the end of its log:\n{tail}")
        if app.control.ping(destination=destination, timeout=0.5) and len(worker_children(proc.pid)) >= concurrency:
            return proc
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit(f"Celery worker did not answer within 90 s; see {log_path}")


def stop_worker(proc: subprocess.Popen) -> None:
    proc.terminate()  # warm shutdown: children finish their task
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def worker_children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def rss_mb(pids: list[int]) -> float:
    """Sum of VmRSS of the given processes, in MB (10^6 bytes)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total / 1e6


def memory_mb(pids: list[int]) -> dict[str, float]:
    """Summed over the given processes, in MB: RSS (what /proc/<pid>/status reports; pages shared
    with the parent after fork count once per child), PSS (shared pages split between their users)
    and USS (private pages only)."""
    total = {"rss": 0.0, "pss": 0.0, "uss": 0.0}
    for pid in pids:
        try:
            rows = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        values = {row.split(":")[0]: int(row.split()[1]) * 1024 / 1e6 for row in rows[1:] if row.endswith("kB")}
        total["rss"] += values.get("Rss", 0)
        total["pss"] += values.get("Pss", 0)
        total["uss"] += values.get("Private_Clean", 0) + values.get("Private_Dirty", 0)
    return total


def purge_queues(redis_url: str, *queues: str) -> int:
    import redis

    client = redis.Redis.from_url(redis_url)
    return client.delete(*queues) if queues else 0


# --- The machine ---------------------------------------------------------------------------------


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _own_tree() -> set[int]:
    mine, frontier = {os.getpid()}, [os.getpid()]
    while frontier:
        pid = frontier.pop()
        for child in worker_children(pid):
            if child not in mine:
                mine.add(child)
                frontier.append(child)
    return mine


def _cpu_ticks() -> dict[int, tuple[int, str]]:
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        found[int(entry.name)] = (
            int(fields[11]) + int(fields[12]),
            cmd or stat[stat.index("(") + 1 : stat.rindex(")")],
        )
    return found


def others_busy(seconds: float = 2.0, top: int = 5) -> list[str]:
    """What else uses the CPU (outside this bench's process tree), sampled over `seconds`."""
    before = _cpu_ticks()
    time.sleep(seconds)
    after = _cpu_ticks()
    mine = _own_tree()
    busy = []
    for pid, (ticks, cmd) in after.items():
        if pid in mine or pid not in before:
            continue
        share = (ticks - before[pid][0]) / CLOCK_TICKS / seconds * 100
        if share >= 5:
            busy.append((share, cmd[:110]))
    busy.sort(reverse=True)
    return [f"{share:5.0f}% {cmd}" for share, cmd in busy[:top]]


def describe_machine(label: str) -> list[str]:
    lines = [f"{label}: load average {loadavg()} on {os.cpu_count()} CPUs"]
    busy = others_busy()
    lines += [f"    other process {b}" for b in busy] or ["    no other process above 5 % CPU"]
    return lines


# --- Reporting -----------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def median(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    if not n:
        return float("nan")
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
