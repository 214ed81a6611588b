"""Billing-run benchmark: the real billing run (services + Celery workers) against one hand-written,
set-based SQL transaction that produces the same invoices, on the same database.

Usage (from the repository root; PostgreSQL on 127.0.0.1:5432 as user postgres, Redis on 6379):

    .venv/bin/python bench/billing_run.py                 # 100,000 orders (about half an hour here)
    .venv/bin/python bench/billing_run.py --orders 2000   # a quick run

What it does:
1. (re)creates its own database `otc_bench_billing` (--db), migrates it and bulk-loads --orders
   fulfilled orders of 5 lines (bulk_create in batches of 5,000) for 2,000 customers: 90 % bill per
   order, 6 % weekly, 4 % monthly; orders fulfilled over the last 60 days (so most weekly and monthly
   periods have ended; the open ones are left alone by both methods);
2. pipeline: starts a real worker, `celery -A otc worker --pool prefork --concurrency 2 -Q <billing
   queue>`, then calls invoicing.billing_runs.run_start (plan the groups, enqueue batches of 200) and
   waits until the run row says done. Time = run_start call to the run's finished_at.
   PDF rendering is kept out: the worker's own default queue (where each billed batch puts its
   invoice_render_pdfs messages on commit, one per 50 invoices) is a separate queue that no worker
   consumes; the bench deletes it every 2 s and at the end. Enqueuing those messages stays in the
   measurement; rendering does not;
3. records what the run produced (per invoice: its orders, totals, tax breakdown, snapshots, due
   date, line count), then resets the database to the loaded state (TRUNCATE invoices and lines,
   delete the events and audit rows the run wrote, orders back to fulfilled, VACUUM ANALYZE);
4. set-based SQL: one transaction of INSERT ... SELECT statements (see SET_BASED_SQL) that plans the
   groups, takes a block of gapless numbers under the sequence row's lock, writes the invoices with
   totals, tax breakdown (EN 16931 rounding: per rate, half-up), customer/terms/seller snapshots and
   due dates, their lines, a content hash, marks the orders invoiced with an order event each, and
   writes the two audit rows per invoice the services write. The terms snapshot (its human text
   comes from billing.terms) is computed once per payment terms in Python, as data for the SQL;
5. checks both produced the same invoices (same order groups, totals, breakdowns, snapshots, due
   dates, line counts; gapless numbers 1..K), prints both times and the ratio (target <= 5x);
6. when the ratio misses (or with --profile), bills --profile-groups groups in this process under
   cProfile with every query timed, and prints where the time of one invoice goes.

The bench database is kept for inspection (dropped by the next run).
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, bench/ comes first on sys.path and bench/orders.py would shadow the orders app.
sys.path[0] = str(ROOT)

import argparse  # noqa: E402
import cProfile  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import pstats  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402

from bench import common  # noqa: E402

TARGET_RATIO = 5.0
BILLING_QUEUE = "otc-bench-billing"
PDF_QUEUE = "otc-bench-billing-pdf"  # where the workers put the PDF tasks on commit; never consumed
CYCLES = (("per_order", 0.90), ("weekly", 0.06), ("monthly", 0.04))
TABLE = re.compile(r'(?:FROM|INTO|UPDATE)\s+"?(\w+)"?', re.I)

# The set-based billing run. Parameters: as_of, tz, year, issue_date, now, seller (JSON), ct (the
# content type id of invoicing.invoice). Temporary tables live until the transaction ends.
SET_BASED_SQL = [
    # Groups: one per order for per-order customers, one per customer, currency and ended period for
    # weekly and monthly customers (invoicing.billing_runs.plan_groups).
    """
    CREATE TEMP TABLE bench_groups ON COMMIT DROP AS
    WITH o AS (
        SELECT o.id, o.customer_id, o.currency, c.billing_cycle AS cycle, o.fulfilled_at,
               (o.fulfilled_at AT TIME ZONE %(tz)s)::date AS day
        FROM orders_order o JOIN billing_customer c ON c.id = o.customer_id
        WHERE o.status = 'fulfilled' AND (o.fulfilled_at AT TIME ZONE %(tz)s)::date <= %(as_of)s
    ), p AS (
        SELECT o.*, CASE o.cycle
                      WHEN 'weekly' THEN o.day + (7 - extract(isodow FROM o.day)::int)
                      WHEN 'monthly' THEN (date_trunc('month', o.day) + interval '1 month - 1 day')::date
                      ELSE o.day END AS period_end
        FROM o
    )
    SELECT id AS order_id, customer_id, currency, fulfilled_at,
           CASE WHEN cycle = 'per_order' THEN 'o' || id
                ELSE concat_ws(':', customer_id, currency, cycle, period_end) END AS group_key
    FROM p WHERE cycle = 'per_order' OR period_end <= %(as_of)s
    """,
    """
    CREATE TEMP TABLE bench_inv ON COMMIT DROP AS
    SELECT group_key, min(customer_id) AS customer_id, min(currency) AS currency,
           row_number() OVER (ORDER BY min(customer_id), min(fulfilled_at), min(order_id)) AS seq
    FROM bench_groups GROUP BY group_key
    """,
    # Tax per rate: the sum of line nets at that rate x the rate, rounded once, half-up.
    """
    CREATE TEMP TABLE bench_totals ON COMMIT DROP AS
    WITH r AS (
        SELECT g.group_key, l.tax_percent, l.tax_category, sum(l.net_amount) AS taxable,
               round(sum(l.net_amount) * l.tax_percent / 100, 2) AS tax
        FROM bench_groups g JOIN orders_orderline l ON l.order_id = g.order_id
        GROUP BY g.group_key, l.tax_percent, l.tax_category
    )
    SELECT group_key, sum(taxable) AS net, sum(tax) AS tax,
           jsonb_agg(jsonb_build_object('rate', tax_percent::text, 'category', tax_category,
                                        'taxable', taxable::text, 'tax', tax::text)
                     ORDER BY tax_percent DESC, tax_category) AS breakdown
    FROM r GROUP BY group_key
    """,
    # The customer as frozen onto the invoice (billing.models.Customer.snapshot).
    """
    CREATE TEMP TABLE bench_customer ON COMMIT DROP AS
    SELECT c.id AS customer_id, jsonb_build_object(
        'code', c.code, 'name', c.name, 'legal_name', coalesce(nullif(c.legal_name, ''), c.name),
        'tax_id', c.tax_id, 'email', c.email, 'phone', c.phone,
        'address', jsonb_build_object('line1', c.billing_line1, 'line2', c.billing_line2, 'city', c.billing_city,
                                      'postal_code', c.billing_postal_code, 'region', c.billing_region,
                                      'country', c.billing_country),
        'address_lines', b.lines,
        'shipping_address_lines', CASE WHEN c.shipping_same_as_billing THEN b.lines ELSE to_jsonb(array_remove(ARRAY[
            nullif(c.shipping_line1, ''), nullif(c.shipping_line2, ''),
            nullif(concat_ws(' ', nullif(c.shipping_postal_code, ''), nullif(c.shipping_city, '')), ''),
            nullif(c.shipping_region, ''), nullif(c.shipping_country, '')], NULL)) END,
        'contacts', coalesce((SELECT jsonb_agg(jsonb_build_object(
                                  'name', k.name, 'email', k.email, 'phone', k.phone, 'role', k.role,
                                  'receives_invoices', k.receives_invoices) ORDER BY k.name, k.id)
                              FROM billing_contact k WHERE k.customer_id = c.id), '[]'::jsonb),
        'billing_method', c.billing_method) AS snapshot
    FROM billing_customer c
    CROSS JOIN LATERAL (SELECT to_jsonb(array_remove(ARRAY[
        nullif(c.billing_line1, ''), nullif(c.billing_line2, ''),
        nullif(concat_ws(' ', nullif(c.billing_postal_code, ''), nullif(c.billing_city, '')), ''),
        nullif(c.billing_region, ''), nullif(c.billing_country, '')], NULL)) AS lines) b
    WHERE c.id IN (SELECT DISTINCT customer_id FROM bench_inv)
    """,
    # A block of gapless numbers, taken under the sequence row's lock (invoicing.services.number_next).
    """
    INSERT INTO invoicing_numbersequence (series, year, last_number) VALUES ('INV', %(year)s, 0)
    ON CONFLICT (series, year) DO NOTHING
    """,
    """
    UPDATE invoicing_numbersequence SET last_number = last_number + (SELECT count(*) FROM bench_inv)
    WHERE series = 'INV' AND year = %(year)s
    """,
    """
    CREATE TEMP TABLE bench_first ON COMMIT DROP AS
    SELECT last_number - (SELECT count(*) FROM bench_inv) AS first
    FROM invoicing_numbersequence WHERE series = 'INV' AND year = %(year)s
    """,
    # The invoices, issued: number, dates, totals, snapshots. {defaults} are the model defaults of
    # the columns the billing run leaves as they are (delivery state and the like).
    """
    INSERT INTO invoicing_invoice (
        kind, series, number, sequence_year, sequence_number, customer_id, status, issue_date, due_date,
        currency, net_total, tax_total, gross_total, amount_paid, customer_snapshot, terms_snapshot,
        seller_snapshot, tax_breakdown, content_sha256, pdf, pdf_status, pdf_sha256, pdf_error, pdf_attempts,
        issued_at, void_reason, created_at, updated_at{default_columns})
    SELECT 'invoice', 'INV', 'INV-' || %(year)s || '-' || lpad((f.first + i.seq)::text, 6, '0'), %(year)s,
           f.first + i.seq, i.customer_id, CASE WHEN t.net + t.tax = 0 THEN 'paid' ELSE 'issued' END,
           %(issue_date)s,
           CASE WHEN pt.end_of_month
                THEN (date_trunc('month', %(issue_date)s::date + pt.due_days) + interval '1 month - 1 day')::date
                ELSE %(issue_date)s::date + pt.due_days END,
           i.currency, t.net, t.tax, t.net + t.tax, 0, cs.snapshot, ts.snapshot, %(seller)s::jsonb, t.breakdown,
           '', '', 'pending', '', '', 0, %(now)s, '', %(now)s, %(now)s{default_values}
    FROM bench_inv i
    CROSS JOIN bench_first f
    JOIN bench_totals t USING (group_key)
    JOIN bench_customer cs ON cs.customer_id = i.customer_id
    JOIN billing_customer c ON c.id = i.customer_id
    JOIN billing_paymentterms pt ON pt.id = c.payment_terms_id
    JOIN bench_terms ts ON ts.terms_id = pt.id AND ts.currency = i.currency
    """,
    # Their lines, numbered in order and line order (invoicing.services.invoice_create_from_orders).
    """
    INSERT INTO invoicing_invoiceline (
        invoice_id, position, order_line_id, order_number, order_date, customer_reference, sku, description,
        quantity, unit, unit_price, discount_percent, tax_percent, tax_category, tax_note, net_amount{line_columns})
    SELECT inv.id, row_number() OVER (PARTITION BY g.group_key ORDER BY o.id, l.position, l.id), l.id, o.number,
           o.order_date, o.customer_reference, p.sku, l.description, l.quantity, l.unit, l.unit_price,
           l.discount_percent, l.tax_percent, l.tax_category, r.legal_note, l.net_amount{line_values}
    FROM bench_groups g
    JOIN bench_inv i USING (group_key)
    CROSS JOIN bench_first f
    JOIN invoicing_invoice inv ON inv.series = 'INV' AND inv.sequence_year = %(year)s
                              AND inv.sequence_number = f.first + i.seq
    JOIN orders_order o ON o.id = g.order_id
    JOIN orders_orderline l ON l.order_id = o.id
    JOIN orders_product p ON p.id = l.product_id
    JOIN billing_taxrate r ON r.id = l.tax_rate_id
    """,
    # The content fingerprint, over the header and every line (the same work as Invoice.fingerprint;
    # a different serialization, so not the same hex digest).
    """
    UPDATE invoicing_invoice inv SET content_sha256 = h.digest
    FROM (
        SELECT l.invoice_id, encode(sha256(convert_to(min(v.header) || string_agg(
            concat_ws('|', l.position, l.order_line_id, l.order_number, l.order_date, l.customer_reference, l.sku,
                      l.description, l.quantity, l.unit, l.unit_price, l.discount_percent, l.tax_percent,
                      l.tax_category, l.tax_note, l.net_amount), E'\\n' ORDER BY l.position, l.id), 'UTF8')), 'hex')
            AS digest
        FROM invoicing_invoiceline l
        JOIN invoicing_invoice v0 ON v0.id = l.invoice_id AND v0.issued_at = %(now)s
        CROSS JOIN LATERAL (SELECT concat_ws('|', v0.number, v0.customer_id, v0.issue_date, v0.due_date,
                                             v0.net_total, v0.tax_total, v0.gross_total, v0.customer_snapshot,
                                             v0.terms_snapshot, v0.seller_snapshot, v0.tax_breakdown) AS header) v
        GROUP BY l.invoice_id
    ) h
    WHERE inv.id = h.invoice_id
    """,
    # The orders become invoiced, with their event (orders.services.order_mark_invoiced).
    "UPDATE orders_order SET status = 'invoiced' WHERE id IN (SELECT order_id FROM bench_groups)",
    """
    INSERT INTO orders_orderevent (order_id, from_status, to_status, actor_id, note, created_at)
    SELECT order_id, 'fulfilled', 'invoiced', NULL, '', %(now)s FROM bench_groups
    """,
    # The audit rows the services write: invoice.drafted and invoice.issued.
    """
    INSERT INTO billing_auditevent (actor_id, action, content_type_id, object_id, object_repr, changes, created_at)
    SELECT NULL::integer, 'invoice.drafted', %(ct)s, inv.id, 'Draft invoice #' || inv.id,
           jsonb_build_object('orders', (SELECT jsonb_agg(DISTINCT l.order_number) FROM invoicing_invoiceline l
                                         WHERE l.invoice_id = inv.id),
                              'gross_total', inv.gross_total::text), %(now)s
    FROM invoicing_invoice inv WHERE inv.issued_at = %(now)s
    UNION ALL
    SELECT NULL::integer, 'invoice.issued', %(ct)s, inv.id, inv.number,
           jsonb_build_object('number', inv.number, 'gross_total', inv.gross_total::text), %(now)s
    FROM invoicing_invoice inv WHERE inv.issued_at = %(now)s
    """,
    """
    INSERT INTO invoicing_billingrun (as_of, status, total_groups, processed_groups, invoices_created, orders_billed,
                                      skipped_groups, errors, started_at, finished_at)
    SELECT %(as_of)s, 'done', k, k, k, (SELECT count(*) FROM bench_groups), 0, '[]'::jsonb, %(now)s, clock_timestamp()
    FROM (SELECT count(*) AS k FROM bench_inv) n
    """,
]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--orders", type=int, default=100_000, help="fulfilled orders to load and bill (default 100000)"
    )
    parser.add_argument("--customers", type=int, default=2000, help="customers (default 2000)")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--profile", action="store_true", help="profile the services even when the ratio passes")
    parser.add_argument("--profile-groups", type=int, default=1000, help="groups billed under the profiler")
    parser.add_argument("--db", default="otc_bench_billing", help="bench database, dropped and recreated")
    parser.add_argument("--pg", default=common.DEFAULT_PG)
    parser.add_argument("--redis", default=common.DEFAULT_REDIS)
    return parser.parse_args()


# --- Pipeline ------------------------------------------------------------------------------------


def pipeline(args, env: dict, workdir: str) -> dict:
    from django.db import connection
    from django.utils import timezone

    from invoicing.billing_runs import run_start
    from invoicing.models import BillingRun, BillingRunStatus

    worker_env = {**env, "CELERY_QUEUE": PDF_QUEUE}
    log_path = os.path.join(workdir, "worker.log")
    proc = common.start_worker(
        worker_env, queues=BILLING_QUEUE, concurrency=args.concurrency, log_path=log_path, name="bench-billing"
    )
    lock_waits = samples = 0
    try:
        t0 = timezone.now()
        run = run_start(as_of=timezone.localdate())
        next_purge = 0.0
        while True:
            run.refresh_from_db()
            if run.status != BillingRunStatus.RUNNING:
                break
            if proc.poll() is not None:
                raise SystemExit(f"The worker died; see {log_path}")
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FILTER (WHERE wait_event_type = 'Lock'), count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()"
                )
                waiting, active = cursor.fetchone()
            if active:
                samples += 1
                lock_waits += waiting
            if time.monotonic() >= next_purge:
                common.purge_queues(args.redis, PDF_QUEUE)
                next_purge = time.monotonic() + 2
            time.sleep(0.5)
    finally:
        common.stop_worker(proc)
        common.purge_queues(args.redis, PDF_QUEUE, BILLING_QUEUE)
    run = BillingRun.objects.get(pk=run.pk)
    return {
        "seconds": (run.finished_at - t0).total_seconds(),
        "run": run,
        "lock_wait_share": lock_waits / samples / args.concurrency if samples else 0.0,
        "log": log_path,
    }


# --- What was billed, and the reset --------------------------------------------------------------


def billed() -> dict:
    """Per invoice, keyed by its sorted order ids: what both methods must agree on."""
    from invoicing.models import Invoice, InvoiceLine

    orders_of: dict[int, set] = {}
    lines_of: Counter = Counter()
    for invoice_id, order_id in InvoiceLine.objects.values_list("invoice_id", "order_line__order_id").iterator(
        chunk_size=20_000
    ):
        orders_of.setdefault(invoice_id, set()).add(order_id)
        lines_of[invoice_id] += 1
    result = {}
    numbers = []
    for row in Invoice.objects.values(
        "id",
        "sequence_number",
        "status",
        "due_date",
        "net_total",
        "tax_total",
        "gross_total",
        "tax_breakdown",
        "customer_snapshot",
        "terms_snapshot",
        "seller_snapshot",
    ).iterator(chunk_size=5000):
        key = tuple(sorted(orders_of.get(row["id"], ())))
        numbers.append(row["sequence_number"])
        result[key] = (
            row["status"],
            row["due_date"],
            row["net_total"],
            row["tax_total"],
            row["gross_total"],
            json.dumps(row["tax_breakdown"], sort_keys=True),
            json.dumps(row["customer_snapshot"], sort_keys=True),
            json.dumps(row["terms_snapshot"], sort_keys=True),
            json.dumps(row["seller_snapshot"], sort_keys=True),
            lines_of[row["id"]],
        )
    return {"invoices": result, "gapless": sorted(numbers) == list(range(1, len(numbers) + 1))}


def compare(a: dict, b: dict) -> list[str]:
    fields = ["status", "due date", "net", "tax", "gross", "tax breakdown", "customer", "terms", "seller", "lines"]
    problems = []
    if set(a["invoices"]) != set(b["invoices"]):
        only_a, only_b = set(a["invoices"]) - set(b["invoices"]), set(b["invoices"]) - set(a["invoices"])
        problems.append(f"different order groups: {len(only_a)} only in the pipeline, {len(only_b)} only in SQL")
    differ = Counter()
    for key in set(a["invoices"]) & set(b["invoices"]):
        for name, x, y in zip(fields, a["invoices"][key], b["invoices"][key], strict=True):
            if x != y:
                differ[name] += 1
    problems += [f"{n} invoices differ in {name}" for name, n in differ.items()]
    if not (a["gapless"] and b["gapless"]):
        problems.append(f"numbers gapless: pipeline {a['gapless']}, SQL {b['gapless']}")
    return problems


def reset() -> float:
    """Back to the loaded state: no invoice, every order fulfilled, no number taken."""
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection, transaction

    from invoicing.models import Invoice

    started = time.perf_counter()
    ct = ContentType.objects.get_for_model(Invoice).pk
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("TRUNCATE invoicing_invoiceline, invoicing_invoice, invoicing_billingrun CASCADE")
        cursor.execute("DELETE FROM billing_auditevent WHERE content_type_id = %s", [ct])
        cursor.execute("DELETE FROM orders_orderevent WHERE to_status = 'invoiced'")
        cursor.execute("UPDATE orders_order SET status = 'fulfilled' WHERE status = 'invoiced'")
        cursor.execute("DELETE FROM invoicing_numbersequence")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


# --- Set-based SQL -------------------------------------------------------------------------------


def _defaults(model, explicit: set[str], prefix: str) -> tuple[str, str, dict]:
    """Columns the SQL does not set itself, with the model's defaults as named parameters, so that
    a field someone adds to the model does not break the bench."""
    from django.db import connection

    columns, values, params = "", "", {}
    for field in model._meta.concrete_fields:
        if field.primary_key or field.attname in explicit or field.column in explicit:
            continue
        name = f"{prefix}_{field.column}"
        columns += f", {field.column}"
        values += f", %({name})s"
        params[name] = field.get_db_prep_save(field.get_default(), connection)
    return columns, values, params


def set_based() -> float:
    from django.conf import settings
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection, transaction
    from django.utils import timezone
    from psycopg2.extras import Json

    from billing.models import PaymentTerms
    from invoicing.models import Invoice, InvoiceLine

    invoice_explicit = {
        "kind",
        "series",
        "number",
        "sequence_year",
        "sequence_number",
        "customer_id",
        "status",
        "issue_date",
        "due_date",
        "currency",
        "net_total",
        "tax_total",
        "gross_total",
        "amount_paid",
        "customer_snapshot",
        "terms_snapshot",
        "seller_snapshot",
        "tax_breakdown",
        "content_sha256",
        "pdf",
        "pdf_status",
        "pdf_sha256",
        "pdf_error",
        "pdf_attempts",
        "issued_at",
        "void_reason",
        "created_at",
        "updated_at",
    }
    line_explicit = {
        "invoice_id",
        "position",
        "order_line_id",
        "order_number",
        "order_date",
        "customer_reference",
        "sku",
        "description",
        "quantity",
        "unit",
        "unit_price",
        "discount_percent",
        "tax_percent",
        "tax_category",
        "tax_note",
        "net_amount",
    }
    inv_cols, inv_vals, inv_params = _defaults(Invoice, invoice_explicit, "inv")
    line_cols, line_vals, line_params = _defaults(InvoiceLine, line_explicit, "line")
    today = timezone.localdate()
    params = {
        "as_of": today,
        "tz": settings.TIME_ZONE,
        "year": today.year,
        "issue_date": today,
        "now": timezone.now(),
        "seller": Json(dict(settings.OTC_COMPANY)),
        "ct": ContentType.objects.get_for_model(Invoice).pk,
    }
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        # The terms' printed text comes from billing.terms: computed once per terms and currency.
        cursor.execute("CREATE TEMP TABLE bench_terms (terms_id bigint, currency text, snapshot jsonb) ON COMMIT DROP")
        cursor.execute("SELECT DISTINCT payment_terms_id, currency FROM billing_customer")
        pairs = cursor.fetchall()
        terms = PaymentTerms.objects.in_bulk([t for t, _c in pairs])
        cursor.executemany(
            "INSERT INTO bench_terms VALUES (%s, %s, %s)", [(t, c, Json(terms[t].snapshot(c))) for t, c in pairs]
        )
        for statement in SET_BASED_SQL:
            if "{default_columns}" in statement:
                statement = statement.format(default_columns=inv_cols, default_values=inv_vals)
            elif "{line_columns}" in statement:
                statement = statement.format(line_columns=line_cols, line_values=line_vals)
            cursor.execute(statement, {**params, **inv_params, **line_params})
    return time.perf_counter() - started


# --- Profile -------------------------------------------------------------------------------------


def profile(groups: int) -> list[str]:
    """Bill `groups` groups in this process, one transaction per batch as run_batch does,
    under cProfile with every query timed: where the time of one invoice goes."""
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from invoicing.billing_runs import BATCH_SIZE, bill_batch, plan_groups

    planned = plan_groups(as_of=timezone.localdate())[:groups]
    queries: list[tuple[str, float]] = []

    def timed(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            queries.append((sql, time.perf_counter() - started))

    profiler = cProfile.Profile()
    started, cpu = time.perf_counter(), time.process_time()
    with connection.execute_wrapper(timed):
        profiler.enable()
        size = getattr(settings, "OTC_BILLING_BATCH_SIZE", None) or BATCH_SIZE
        for i in range(0, len(planned), size):
            bill_batch(groups=planned[i : i + size], issue_date=timezone.localdate())
        profiler.disable()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    n = len(planned)
    sql_s = sum(t for _s, t in queries)
    kinds: Counter = Counter()
    kind_time: Counter = Counter()
    for sql, t in queries:
        head = sql.lstrip().split(None, 1)[0].upper()
        table = TABLE.search(sql)
        key = f"{head} {table.group(1) if table else ''}" + (" FOR UPDATE" if "FOR UPDATE" in sql else "")
        kinds[key] += 1
        kind_time[key] += t
    out = [
        f"profile: {n} groups billed in this process (one transaction per batch, like run_batch), "
        f"{wall / n * 1000:.1f} ms per invoice wall, {cpu / n * 1000:.1f} ms CPU in Python/Django (profiler on)",
        f"  {len(queries) / n:.1f} queries per invoice, {sql_s / n * 1000:.1f} ms per invoice waiting on PostgreSQL "
        f"({sql_s / wall * 100:.0f} % of the time)",
        "  queries per invoice (count, ms; a batch of 200 invoices runs each of these about once):",
    ]
    for key, count in kinds.most_common(14):
        out.append(f"    {count / n:6.3f}  {kind_time[key] / n * 1000:6.2f} ms  {key}")
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    stats.sort_stats("cumulative").print_stats(rf"{re.escape(str(ROOT))}/(invoicing|orders|billing)/", 14)
    out.append("  cumulative time by project function (cProfile):")
    for line in stream.getvalue().splitlines():
        if f"{ROOT}/" in line and line.split()[0].replace("/", "").isdigit():
            parts = line.split()
            where = parts[-1].split(f"{ROOT}/")[-1]
            out.append(f"    {float(parts[3]) / n * 1000:7.2f} ms/inv  {parts[0]:>8} calls  {where}")
    return out


# --- Main ----------------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    workdir = tempfile.mkdtemp(prefix="otc-bench-billing-")
    env = common.bench_env(
        db_url=common.database_url(args.pg, args.db),
        redis_url=args.redis,
        queue=BILLING_QUEUE,
        media_root=os.path.join(workdir, "media"),
    )
    machine = common.describe_machine("before")
    try:
        print(f"1. database {args.db}: recreate, migrate, load {args.orders} fulfilled orders of 5 lines", flush=True)
        common.recreate_database(args.pg, args.db)
        common.setup_django(env)
        common.purge_queues(args.redis, BILLING_QUEUE, PDF_QUEUE)
        print(f"   migrated in {common.migrate():.1f} s", flush=True)
        started = time.perf_counter()
        loaded = common.load_fulfilled_orders(n_orders=args.orders, n_customers=args.customers, cycles=CYCLES)
        print(f"   loaded {loaded} in {time.perf_counter() - started:.1f} s", flush=True)

        print(
            f"2. billing run: run_start + worker --concurrency {args.concurrency} (PDF rendering left out)", flush=True
        )
        result = pipeline(args, env, workdir)
        run = result["run"]
        load_after_pipeline = common.loadavg()
        pipeline_billed = billed()
        print(
            f"   {run.invoices_created} invoices for {run.orders_billed} orders in {result['seconds']:.1f} s "
            f"({run.status}, {len(run.errors)} errors)",
            flush=True,
        )

        print("3. reset to the loaded state", flush=True)
        print(f"   reset in {reset():.1f} s", flush=True)

        print("4. set-based SQL, one transaction", flush=True)
        sql_seconds = set_based()
        sql_billed = billed()
        print(f"   {len(sql_billed['invoices'])} invoices in {sql_seconds:.1f} s", flush=True)
        problems = compare(pipeline_billed, sql_billed)

        ratio = result["seconds"] / sql_seconds
        profiled = []
        if args.profile or ratio > TARGET_RATIO:
            print(f"5. profile: reset, then bill {args.profile_groups} groups in this process", flush=True)
            reset()
            profiled = profile(args.profile_groups)
    finally:
        common.purge_queues(args.redis, BILLING_QUEUE, PDF_QUEUE)
        shutil.rmtree(workdir, ignore_errors=True)
    machine += common.describe_machine("after")

    n = len(pipeline_billed["invoices"])
    print()
    print(
        f"Billing-run benchmark: {args.orders} fulfilled orders of 5 lines, {args.customers} customers "
        f"(90 % per order, 6 % weekly, 4 % monthly) -> {n} invoices"
    )
    print(
        f"  pipeline  {result['seconds']:8.1f} s  {n / result['seconds']:7.1f} invoices/s  (run_start + "
        f"{args.concurrency} worker processes; PDFs not rendered)"
    )
    print(f"  SQL       {sql_seconds:8.1f} s  {n / sql_seconds:7.1f} invoices/s  (one set-based transaction)")
    print(
        f"  ratio pipeline/SQL  {ratio:6.1f}x   target <= {TARGET_RATIO:.0f}x   {common.verdict(ratio <= TARGET_RATIO)}"
    )
    print(
        f"  same result: {'yes' if not problems else 'NO: ' + '; '.join(problems)} "
        "(order groups, totals, tax breakdowns, snapshots, due dates, line counts, gapless numbers)"
    )
    print(
        f"  while the run went: a worker's query was waiting on a lock in {result['lock_wait_share'] * 100:.0f} % "
        "of the samples (pg_stat_activity, every 0.5 s)"
    )
    for line in profiled:
        print(f"  {line}")
    for line in [*machine, f"right after the pipeline: load average {load_after_pipeline}"]:
        print(f"  {line}")


if __name__ == "__main__":
    main()
