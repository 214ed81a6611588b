"""Late-payment penalty run: the real pipeline against one hand-written set-based SQL statement.

Usage (from the repository root, PostgreSQL on 127.0.0.1:5432 as user postgres, Redis on 6379):

    .venv/bin/python bench/penalties.py                      # 1,000,000 invoices, 300,000 overdue
    .venv/bin/python bench/penalties.py --invoices 100000    # a quicker run, same shares

What it does, on its own database `otc_bench_penalties` (dropped and recreated) and Redis db:
1. loads the data in SQL (`generate_series`, no Python per row): 2,000 customers on terms with
   12 % p.a. interest, 5 days' grace, a 40.00 fixed fee and a cap of 25 % of the invoice; N issued
   invoices (one in ten of them within the cap's reach: small amounts), 30 % of them past due by 6
   to 95 days, the rest not yet due; a third of the overdue ones partially paid (40 %, received on
   a day inside the penalty period, so the daily balance changes mid-period);
2. **pipeline**: `payments.penalties.run_start` (selects the candidates in SQL, enqueues batches of
   2,000) and a real worker, `celery -A otc worker --pool prefork --concurrency 2`, consuming only
   the penalty queue; time = `run_start` call to the run row's `finished_at`. The penalty invoices'
   PDF tasks, which `assess_batch` enqueues on commit, go to the worker's default queue, which no
   worker consumes: enqueuing them is measured, rendering is not (bench/pdf.py measures that);
3. **rerun**: `run_start` again at once, time until the run is done (it must find nothing to do);
4. **SQL**: back to the loaded state (penalty invoices, lines, assessments, runs and the PEN number
   sequence removed, `VACUUM ANALYZE`), then ONE statement (`SET_BASED_SQL`, data-modifying CTEs)
   that computes each overdue invoice's interest (simple, actual/365, on the balance outstanding at
   the end of each day), fee and cap, takes a gapless block of PEN numbers under the sequence row's
   lock, and writes the penalty invoices (totals, snapshots, tax breakdown, content hash), their
   lines (interest and fee, with the period and the computation in words) and the assessments;
5. compares the two results per overdue invoice (period, days, interest, fee, capped, penalty
   invoice total and line count) and checks both numberings are gapless; prints the times, the
   ratio pipeline / SQL against the target (<= 5x) and the rerun time against its limit (<= 2 s).
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # run as a script: the project, not bench/, comes first

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import date  # noqa: E402
from decimal import Decimal  # noqa: E402

from bench import common  # noqa: E402

TARGET_RATIO = 5.0
RERUN_LIMIT_S = 2.0
QUEUE = "otc-bench-penalties"
PDF_QUEUE = "otc-bench-penalties-pdf"  # where the worker's assess_batch puts invoice_render_pdf; never consumed
N_CUSTOMERS = 2000

# The pipeline's penalty invoice lines, word for word (payments/penalties.py _lines_for).
SET_BASED_SQL = """
WITH paid AS (
    SELECT a.invoice_id,
           sum(a.amount * (%(as_of)s::date - greatest(p.received_on, i.due_date + 1) + 1)) AS weighted
    FROM payments_allocation a
    JOIN payments_payment p ON p.id = a.payment_id
    JOIN invoicing_invoice i ON i.id = a.invoice_id
    WHERE p.received_on <= %(as_of)s AND i.kind = 'invoice' AND i.due_date < %(as_of)s
    GROUP BY a.invoice_id
),
raw AS (
    SELECT i.id, i.customer_id, i.currency, i.gross_total, i.due_date, i.number AS original_number, i.status,
           i.customer_snapshot, i.terms_snapshot,
           (i.terms_snapshot ->> 'annual_interest_rate')::numeric AS rate,
           (i.terms_snapshot ->> 'fixed_fee')::numeric AS fixed_fee,
           nullif(i.terms_snapshot ->> 'penalty_cap_percent', '')::numeric AS cap,
           %(as_of)s::date - i.due_date AS days,
           round((i.gross_total * (%(as_of)s::date - i.due_date) - coalesce(paid.weighted, 0))
                 * (i.terms_snapshot ->> 'annual_interest_rate')::numeric / 100 / 365, 2) AS interest
    FROM invoicing_invoice i
    LEFT JOIN paid ON paid.invoice_id = i.id
    WHERE i.kind = 'invoice' AND i.status IN ('issued', 'partially_paid')
      AND %(as_of)s::date - i.due_date > coalesce((i.terms_snapshot ->> 'grace_days')::int, 0)
      AND NOT ((i.terms_snapshot ->> 'annual_interest_rate')::numeric = 0
               AND (i.terms_snapshot ->> 'fixed_fee')::numeric = 0)
),
capped AS (
    SELECT raw.*, round(gross_total * cap / 100, 2) AS room,
           cap IS NOT NULL AND interest + fixed_fee > round(gross_total * cap / 100, 2) AS is_capped
    FROM raw
),
charge AS (
    SELECT capped.*,
           CASE WHEN is_capped THEN least(fixed_fee, room) ELSE fixed_fee END AS fee,
           CASE WHEN is_capped THEN room - least(fixed_fee, room) ELSE interest END AS interest_charged
    FROM capped
),
numbered AS (
    SELECT charge.*, %(base)s + row_number() OVER (ORDER BY id) AS seq_no
    FROM charge WHERE interest_charged + fee > 0
),
docs AS (
    INSERT INTO invoicing_invoice (kind, series, number, sequence_year, sequence_number, customer_id, status,
        issue_date, due_date, currency, net_total, tax_total, gross_total, amount_paid, customer_snapshot,
        terms_snapshot, seller_snapshot, tax_breakdown, content_sha256, original_id, pdf_status, issued_at,
        created_at, updated_at {invoice_columns})
    SELECT 'penalty', 'PEN', 'PEN-' || %(year)s || '-' || lpad(seq_no::text, 6, '0'), %(year)s, seq_no,
        customer_id, 'issued', %(issue_date)s, %(issue_date)s, currency, interest_charged + fee, 0.00,
        interest_charged + fee, 0, customer_snapshot, terms_snapshot, %(seller)s,
        jsonb_build_array(jsonb_build_object('rate', '0.00', 'category', 'exempt',
                                             'taxable', (interest_charged + fee)::text, 'tax', '0.00')),
        encode(sha256(convert_to(concat_ws('|', 'PEN', seq_no, customer_id, interest_charged, fee, id), 'UTF8')),
               'hex'),
        id, 'pending', %(now)s, %(now)s, %(now)s {invoice_values}
    FROM numbered
    RETURNING id, original_id
),
lines AS (
    INSERT INTO invoicing_invoiceline (invoice_id, position, description, quantity, unit, unit_price,
        tax_percent, tax_category, tax_note, net_amount {line_columns})
    SELECT docs.id, l.position, l.description, 1, 'unit', l.amount, 0, 'exempt', %(tax_note)s, l.amount
        {line_values}
    FROM docs
    JOIN numbered n ON n.id = docs.original_id
    CROSS JOIN LATERAL (
        SELECT 1 AS position, n.interest_charged AS amount,
               'Late-payment interest on ' || n.original_number || ' (due ' || to_char(n.due_date, 'YYYY-MM-DD')
               || '): ' || to_char(n.due_date + 1, 'YYYY-MM-DD') || ' to ' || to_char(%(as_of)s::date, 'YYYY-MM-DD')
               || ', ' || n.days || ' days at ' || n.rate::text || '%% p.a. (actual/365) on the balance '
               || 'outstanding each day' || CASE WHEN n.is_capped THEN ', limited by the penalty cap' ELSE '' END
               AS description
        WHERE n.interest_charged > 0
        UNION ALL
        SELECT CASE WHEN n.interest_charged > 0 THEN 2 ELSE 1 END, n.fee,
               'Fixed recovery fee for late payment of ' || n.original_number
        WHERE n.fee > 0
    ) l
    RETURNING id
)
-- (data-modifying CTEs always run to completion, read or not)
INSERT INTO payments_penaltyassessment (invoice_id, run_id, period_start, period_end, days, annual_rate,
    interest, fee, capped, penalty_invoice_id, created_at {assessment_columns})
SELECT c.id, NULL, c.due_date + 1, %(as_of)s, c.days, c.rate, c.interest_charged, c.fee, c.is_capped, docs.id,
    %(now)s {assessment_values}
FROM charge c
LEFT JOIN docs ON docs.original_id = c.id
WHERE c.interest_charged + c.fee > 0 OR c.is_capped
"""
# The PEN number block: the sequence row is created if missing and locked before the statement
# (as number_block does), and moved past the numbers the statement used after it, same transaction.
LOCK_SEQUENCE_SQL = [
    "INSERT INTO invoicing_numbersequence (series, year, last_number) VALUES ('PEN', %(year)s, 0) "
    "ON CONFLICT (series, year) DO NOTHING",
    "SELECT last_number FROM invoicing_numbersequence WHERE series = 'PEN' AND year = %(year)s FOR UPDATE",
]
BUMP_SEQUENCE_SQL = (
    "UPDATE invoicing_numbersequence SET last_number = (SELECT coalesce(max(sequence_number), 0) "
    "FROM invoicing_invoice WHERE series = 'PEN' AND sequence_year = %(year)s) "
    "WHERE series = 'PEN' AND year = %(year)s"
)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invoices", type=int, default=1_000_000, help="open invoices (default 1000000)")
    parser.add_argument("--overdue", type=float, default=0.30, help="share overdue (default 0.30)")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--batch-size", type=int, default=2000, help="invoices per task (the product's 2000)")
    parser.add_argument("--db", default="otc_bench_penalties")
    parser.add_argument("--pg", default=common.DEFAULT_PG)
    parser.add_argument("--redis", default=common.DEFAULT_REDIS.rsplit("/", 1)[0] + "/11")
    parser.add_argument("--reuse-db", action="store_true", help="keep a database an earlier run loaded")
    return parser.parse_args()


def defaults(model, explicit: set[str], prefix: str) -> tuple[str, str, dict]:
    """Columns the SQL does not set itself, with the model's defaults as named parameters, so
    that a field added to the model later does not break the bench."""
    from django.db import connection

    columns, values, params = "", "", {}
    for field in model._meta.concrete_fields:
        if field.primary_key or field.column in explicit:
            continue
        name = f"{prefix}_{field.column}"
        columns += f", {field.column}"
        values += f", %({name})s"
        default = field.get_default() if field.has_default() else ("" if not field.null else None)
        params[name] = field.get_db_prep_save(default, connection)
    return columns, values, params


def load(n: int, overdue: float, as_of: date) -> dict:
    """Customers by the ORM; invoices, payments and allocations by INSERT ... SELECT in PostgreSQL."""
    from django.conf import settings
    from django.db import connection, transaction
    from django.utils import timezone
    from psycopg2.extras import Json

    from billing.models import Customer, PaymentTerms
    from invoicing.models import Invoice, NumberSequence
    from payments.models import Allocation, Payment

    started = time.perf_counter()
    terms = PaymentTerms.objects.create(
        name="Net 30, 12% late interest",
        due_days=30,
        accepted_methods=["bank_transfer"],
        grace_days=5,
        annual_interest_rate=Decimal("12.00"),
        fixed_fee=Decimal("40.00"),
        penalty_cap_percent=Decimal("25.00"),
    )
    Customer.objects.bulk_create(
        Customer(code=f"P{k:05d}", name=f"Penalty customer {k}", currency="EUR", payment_terms=terms)
        for k in range(N_CUSTOMERS)
    )
    snapshot = terms.snapshot("EUR")
    overdue_per_mille = round(overdue * 1000)
    inv_explicit = {
        "kind", "series", "number", "sequence_year", "sequence_number", "customer_id", "status", "issue_date",
        "due_date", "currency", "net_total", "tax_total", "gross_total", "amount_paid", "customer_snapshot",
        "terms_snapshot", "seller_snapshot", "tax_breakdown", "content_sha256", "issued_at", "pdf_status",
        "created_at", "updated_at",
    }  # fmt: skip
    inv_cols, inv_vals, inv_params = defaults(Invoice, inv_explicit, "inv")
    pay_explicit = {"number", "customer_id", "method", "amount", "currency", "received_on", "reference", "source",
                    "allocated_amount", "created_at"}  # fmt: skip
    pay_cols, pay_vals, pay_params = defaults(Payment, pay_explicit, "pay")
    alloc_cols, alloc_vals, alloc_params = defaults(Allocation, {"payment_id", "invoice_id", "amount", "created_at"},
                                                    "alloc")  # fmt: skip
    params = {
        "n": n,
        "year": as_of.year,
        "as_of": as_of,
        "now": timezone.now(),
        "terms": Json(snapshot),
        "seller": Json(dict(settings.OTC_COMPANY)),
        "permille": overdue_per_mille,
        **inv_params,
        **pay_params,
        **alloc_params,
    }
    with transaction.atomic(), connection.cursor() as cursor:
        # Invoice k: overdue when k mod 1000 < permille (6..95 days past due), else due within 30 days;
        # one in ten small (within the cap's reach: the 40.00 fee alone is over 25 % of it).
        cursor.execute(
            f"""
            INSERT INTO invoicing_invoice (kind, series, number, sequence_year, sequence_number, customer_id,
                status, issue_date, due_date, currency, net_total, tax_total, gross_total, amount_paid,
                customer_snapshot, terms_snapshot, seller_snapshot, tax_breakdown, content_sha256, issued_at,
                pdf_status, created_at, updated_at {inv_cols})
            SELECT 'invoice', 'INV', 'INV-' || %(year)s || '-' || lpad(k::text, 7, '0'), %(year)s, k, c.id,
                'issued', g.due - 30, g.due, 'EUR', round(g.gross / 1.2, 2), g.gross - round(g.gross / 1.2, 2),
                g.gross, 0,
                jsonb_build_object('code', c.code, 'name', c.name, 'legal_name', c.name, 'currency', 'EUR'),
                %(terms)s, %(seller)s,
                jsonb_build_array(jsonb_build_object('rate', '20.00', 'category', 'standard',
                    'taxable', round(g.gross / 1.2, 2)::text, 'tax', (g.gross - round(g.gross / 1.2, 2))::text)),
                md5(k::text), %(now)s, 'ready', %(now)s, %(now)s {inv_vals}
            FROM generate_series(1, %(n)s) AS k
            JOIN billing_customer c ON c.code = 'P' || lpad((k %% {N_CUSTOMERS})::text, 5, '0')
            CROSS JOIN LATERAL (SELECT
                CASE WHEN k %% 1000 < %(permille)s THEN %(as_of)s::date - (6 + k %% 90)
                     ELSE %(as_of)s::date + (k %% 30) END AS due,
                CASE WHEN k %% 10 = 3 THEN 60 + (k %% 97)::numeric
                     ELSE 120 + ((k::bigint * 7919) %% 500000)::numeric / 100 END AS gross) g
            """,
            params,
        )
        # A third of the overdue invoices got 40 % paid, on a day inside their penalty period.
        cursor.execute(
            f"""
            WITH part AS (
                SELECT id, customer_id, round(gross_total * 0.4, 2) AS amount,
                       due_date + 1 + (sequence_number %% greatest(%(as_of)s::date - due_date - 1, 1))::int AS received
                FROM invoicing_invoice
                WHERE kind = 'invoice' AND due_date < %(as_of)s AND sequence_number %% 3 = 0
            ), pay AS (
                INSERT INTO payments_payment (number, customer_id, method, amount, currency, received_on, reference,
                    source, allocated_amount, created_at {pay_cols})
                SELECT 'PAY-B' || part.id, customer_id, 'bank_transfer', amount, 'EUR', received, 'part ' || part.id,
                    'bank_import', amount, %(now)s {pay_vals}
                FROM part
                RETURNING id, reference, amount
            ), alloc AS (
                INSERT INTO payments_allocation (payment_id, invoice_id, amount, created_at {alloc_cols})
                SELECT pay.id, substr(pay.reference, 6)::bigint, pay.amount, %(now)s {alloc_vals} FROM pay
                RETURNING invoice_id, amount
            )
            UPDATE invoicing_invoice i SET amount_paid = alloc.amount, status = 'partially_paid'
            FROM alloc WHERE i.id = alloc.invoice_id
            """,
            params,
        )
    NumberSequence.objects.update_or_create(series="INV", year=as_of.year, defaults={"last_number": n})
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return {
        "seconds": time.perf_counter() - started,
        "invoices": Invoice.objects.count(),
        "overdue": Invoice.objects.filter(due_date__lt=as_of).count(),
        "partial": Invoice.objects.filter(status="partially_paid").count(),
    }


def pipeline(args, env: dict, workdir: str, as_of: date) -> dict:
    from payments import penalties
    from payments.models import PenaltyRun

    worker_env = {**env, "CELERY_QUEUE": PDF_QUEUE}
    worker = common.start_worker(
        worker_env,
        queues=QUEUE,
        concurrency=args.concurrency,
        log_path=f"{workdir}/worker.log",
        name="bench-penalties",
    )
    from django.utils import timezone

    try:
        started_at = timezone.now()  # the run row is created after the candidates are selected
        started = time.perf_counter()
        run = penalties.run_start(as_of=as_of, batch_size=args.batch_size)
        last_purge = time.monotonic()
        while True:
            run.refresh_from_db()
            if run.finished_at:
                break
            if worker.poll() is not None:
                raise SystemExit(f"the worker died; see {workdir}/worker.log")
            if time.monotonic() - last_purge > 2:
                common.purge_queues(args.redis, PDF_QUEUE)
                last_purge = time.monotonic()
            time.sleep(0.2)
        seconds = (run.finished_at - started_at).total_seconds()
        wall = time.perf_counter() - started
        rerun_started = time.perf_counter()
        rerun = penalties.run_start(as_of=as_of, batch_size=args.batch_size)
        while not PenaltyRun.objects.filter(pk=rerun.pk, finished_at__isnull=False).exists():
            time.sleep(0.05)
        rerun_seconds = time.perf_counter() - rerun_started
        rerun.refresh_from_db()
    finally:
        common.stop_worker(worker)
        common.purge_queues(args.redis, PDF_QUEUE, QUEUE)
    return {
        "seconds": seconds,
        "wall": wall,
        "run": run,
        "rerun_seconds": rerun_seconds,
        "rerun_candidates": rerun.candidates,
        "rerun_assessments": rerun.assessments,
    }


def result() -> dict:
    """Per overdue invoice: what was charged, and the penalty invoice it was charged on."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT a.invoice_id, a.period_start, a.period_end, a.days, a.interest, a.fee, a.capped,
                   p.gross_total, (SELECT count(*) FROM invoicing_invoiceline l WHERE l.invoice_id = p.id)
            FROM payments_penaltyassessment a LEFT JOIN invoicing_invoice p ON p.id = a.penalty_invoice_id
            """
        )
        rows = {row[0]: row[1:] for row in cursor.fetchall()}
        cursor.execute(
            "SELECT count(*), min(sequence_number), max(sequence_number), count(DISTINCT sequence_number) "
            "FROM invoicing_invoice WHERE kind = 'penalty'"
        )
        count, first, last, distinct = cursor.fetchone()
    gapless = count == 0 or (first == 1 and last == count and distinct == count)
    return {"rows": rows, "penalty_invoices": count, "gapless": gapless}


def reset() -> float:
    from django.db import connection, transaction

    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM payments_penaltyassessment")
        cursor.execute(
            "DELETE FROM invoicing_invoiceline WHERE invoice_id IN "
            "(SELECT id FROM invoicing_invoice WHERE kind = 'penalty')"
        )
        cursor.execute("DELETE FROM invoicing_invoice WHERE kind = 'penalty'")
        cursor.execute("DELETE FROM payments_penaltyrunbatch")
        cursor.execute("DELETE FROM payments_penaltyrun")
        cursor.execute("DELETE FROM invoicing_numbersequence WHERE series = 'PEN'")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


def set_based(as_of: date) -> float:
    from django.conf import settings
    from django.db import connection, transaction
    from django.utils import timezone
    from psycopg2.extras import Json

    from invoicing.models import Invoice, InvoiceLine
    from payments.models import PenaltyAssessment
    from payments.penalties import TAX_NOTE

    inv_explicit = {
        "kind", "series", "number", "sequence_year", "sequence_number", "customer_id", "status", "issue_date",
        "due_date", "currency", "net_total", "tax_total", "gross_total", "amount_paid", "customer_snapshot",
        "terms_snapshot", "seller_snapshot", "tax_breakdown", "content_sha256", "original_id", "pdf_status",
        "issued_at", "created_at", "updated_at",
    }  # fmt: skip
    line_explicit = {"invoice_id", "position", "description", "quantity", "unit", "unit_price", "tax_percent",
                     "tax_category", "tax_note", "net_amount"}  # fmt: skip
    pa_explicit = {"invoice_id", "run_id", "period_start", "period_end", "days", "annual_rate", "interest", "fee",
                   "capped", "penalty_invoice_id", "created_at"}  # fmt: skip
    inv_cols, inv_vals, inv_params = defaults(Invoice, inv_explicit, "inv")
    line_cols, line_vals, line_params = defaults(InvoiceLine, line_explicit, "line")
    pa_cols, pa_vals, pa_params = defaults(PenaltyAssessment, pa_explicit, "pa")
    sql = SET_BASED_SQL.format(
        invoice_columns=inv_cols,
        invoice_values=inv_vals,
        line_columns=line_cols,
        line_values=line_vals,
        assessment_columns=pa_cols,
        assessment_values=pa_vals,
    )
    today = timezone.localdate()
    params = {
        "as_of": as_of,
        "year": today.year,
        "issue_date": today,
        "now": timezone.now(),
        "seller": Json(dict(settings.OTC_COMPANY)),
        "tax_note": TAX_NOTE,
        **inv_params,
        **line_params,
        **pa_params,
    }
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(LOCK_SEQUENCE_SQL[0], params)
        cursor.execute(LOCK_SEQUENCE_SQL[1], params)
        params["base"] = cursor.fetchone()[0]
        cursor.execute(sql, params)
        cursor.execute(BUMP_SEQUENCE_SQL, params)
    return time.perf_counter() - started


def compare(a: dict, b: dict) -> list[str]:
    problems = []
    if set(a["rows"]) != set(b["rows"]):
        only_a, only_b = set(a["rows"]) - set(b["rows"]), set(b["rows"]) - set(a["rows"])
        problems.append(f"assessed invoices differ: {len(only_a)} only in the pipeline, {len(only_b)} only in SQL")
    differing = [k for k in set(a["rows"]) & set(b["rows"]) if a["rows"][k] != b["rows"][k]]
    if differing:
        k = min(differing)
        problems.append(f"{len(differing)} assessments differ, e.g. invoice {k}: {a['rows'][k]} vs {b['rows'][k]}")
    if a["penalty_invoices"] != b["penalty_invoices"]:
        problems.append(f"penalty invoices: {a['penalty_invoices']} vs {b['penalty_invoices']}")
    if not (a["gapless"] and b["gapless"]):
        problems.append(f"gapless numbers: pipeline {a['gapless']}, SQL {b['gapless']}")
    return problems


def database_loaded(pg_url: str, db: str) -> bool:
    conn = common.admin_connection(pg_url)
    with conn.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db])
        exists = cursor.fetchone() is not None
    conn.close()
    return exists


def main() -> None:
    args = parse_args()
    db_url = common.database_url(args.pg, args.db)
    workdir = tempfile.mkdtemp(prefix="otc-bench-penalties-")
    env = common.bench_env(db_url=db_url, redis_url=args.redis, queue=QUEUE, media_root=f"{workdir}/media")
    print(*common.describe_machine("before"), sep="\n")
    loaded = args.reuse_db and database_loaded(args.pg, args.db)
    if not loaded:
        common.recreate_database(args.pg, args.db)
    common.setup_django(env)
    from django.utils import timezone

    as_of = timezone.localdate()
    if not loaded:
        print(f"migrate: {common.migrate():.1f} s")
        data = load(args.invoices, args.overdue, as_of)
        print(
            f"loaded {data['invoices']:,} invoices ({data['overdue']:,} overdue, {data['partial']:,} partly paid) "
            f"in {data['seconds']:.1f} s"
        )
    else:
        print(f"reset: {reset():.1f} s")
    common.purge_queues(args.redis, PDF_QUEUE, QUEUE)

    print(f"\npipeline: run_start + {args.concurrency} worker processes, batches of {args.batch_size} ...")
    piped = pipeline(args, env, workdir, as_of)
    run = piped["run"]
    ours = result()
    print(
        f"  {run.candidates:,} candidates, {run.assessments:,} assessments, {run.penalty_invoices:,} penalty invoices, "
        f"interest {run.interest_total}, fees {run.fee_total}, {len(run.errors)} failed batches"
    )
    print(f"  {piped['seconds']:.1f} s ({run.assessments / piped['seconds']:,.0f} assessments/s)  [{common.loadavg()}]")
    print(
        f"  rerun: {piped['rerun_seconds']:.2f} s, {piped['rerun_candidates']} candidates, "
        f"{piped['rerun_assessments']} assessments"
    )

    print(f"\nreset to the loaded state: {reset():.1f} s")
    print("set-based SQL: one statement ...")
    sql_seconds = set_based(as_of)
    theirs = result()
    print(
        f"  {len(theirs['rows']):,} assessments, {theirs['penalty_invoices']:,} penalty invoices "
        f"in {sql_seconds:.1f} s [{common.loadavg()}]"
    )

    problems = compare(ours, theirs)
    ratio = piped["seconds"] / sql_seconds
    print("\n== Result ==")
    print(f"same result: {'yes' if not problems else 'NO'}")
    for problem in problems:
        print(f"  {problem}")
    print(f"pipeline / SQL: {piped['seconds']:.1f} s / {sql_seconds:.1f} s = {ratio:.2f}x "
          f"(target <= {TARGET_RATIO:.0f}x): {common.verdict(ratio <= TARGET_RATIO and not problems)}")  # fmt: skip
    rerun_ok = piped["rerun_seconds"] <= RERUN_LIMIT_S and piped["rerun_assessments"] == 0
    print(f"rerun right after: {piped['rerun_seconds']:.2f} s, {piped['rerun_assessments']} new assessments "
          f"(target <= {RERUN_LIMIT_S:.0f} s, nothing charged): {common.verdict(rerun_ok)}")  # fmt: skip
    print(*common.describe_machine("after"), sep="\n")


if __name__ == "__main__":
    main()
