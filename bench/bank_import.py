"""Bank import benchmark: a 10,000-line CAMT.053 statement imported and matched. Target <= 10 s.

Usage (from the repository root; PostgreSQL on 127.0.0.1:5432 as user postgres):

    .venv/bin/python bench/bank_import.py                  # 10,000 lines
    .venv/bin/python bench/bank_import.py --lines 2000     # a quick run

What it does:
1. (re)creates its own database `otc_bench_bank` (--db), migrates it, and bulk-loads --customers
   customers (each with an IBAN) and one issued, open invoice per statement line (numbers
   INV-2026-000001 ...; totals net + 20 % tax), spread over the customers;
2. writes a CAMT.053 file of --lines credit entries: 70 % name one invoice by number with its exact
   balance (these post), 20 % come from a customer's IBAN without any invoice number (these become
   suggestions), 10 % come from unknown accounts with free text (these stay unmatched);
3. times the real code path: `payments.bank.bank_statement_import` (parse with lxml, store the
   statement and its lines) then `payments.bank.statement_match` (what the
   `bank_statement_match` Celery task runs: matching, posting payments with their allocations and
   audit rows, invoice balances and statuses, progress), in this process;
4. checks the outcome (matched / suggested / unmatched counts, one payment per matched line, paid
   invoices, allocations = amount paid) and prints the times, the ratio to the 10 s target, and
   the machine's load (the machine is shared).

The bench database is kept for inspection (dropped by the next run).
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # bench/orders.py would shadow the orders app

import argparse  # noqa: E402
import random  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import date, timedelta  # noqa: E402
from decimal import Decimal  # noqa: E402

from bench import common  # noqa: E402

TARGET_SECONDS = 10.0
ACCOUNT_IBAN = "FR7630006000011234567890189"


def backend_cpu(pid: int) -> float:
    """CPU seconds (user + system) the PostgreSQL backend serving this connection has used (it runs
    on this machine); 0 when /proc does not show it."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / common.CLOCK_TICKS


def load(n_customers: int, n_invoices: int, seed: int = 11) -> tuple[list, list]:
    from django.db import transaction

    from billing.models import Customer, PaymentTerms
    from invoicing.models import Invoice, InvoiceStatus, NumberSequence

    rng = random.Random(seed)
    with transaction.atomic():
        terms = PaymentTerms.objects.create(name="Net 30", due_days=30, accepted_methods=["bank_transfer"])
        customers = Customer.objects.bulk_create(
            [
                Customer(
                    code=f"C{i:05d}",
                    name=f"Customer {i} SARL",
                    email=f"ap{i}@example.com",
                    currency="EUR",
                    payment_terms=terms,
                    iban=f"DE{10 + i % 89:02d}{i:018d}",
                )
                for i in range(1, n_customers + 1)
            ],
            batch_size=5000,
        )
        issued = date(2026, 10, 1)
        invoices = []
        for n in range(1, n_invoices + 1):
            net = Decimal(rng.randint(1000, 500000)) / 100
            tax = (net * Decimal("0.20")).quantize(Decimal("0.01"))
            day = issued + timedelta(days=n % 40)
            invoices.append(
                Invoice(
                    series="INV",
                    number=f"INV-2026-{n:06d}",
                    sequence_year=2026,
                    sequence_number=n,
                    customer=customers[n % n_customers],
                    status=InvoiceStatus.ISSUED,
                    issue_date=day,
                    due_date=day + timedelta(days=30),
                    currency="EUR",
                    net_total=net,
                    tax_total=tax,
                    gross_total=net + tax,
                )
            )
        Invoice.objects.bulk_create(invoices, batch_size=5000)
        NumberSequence.objects.create(series="INV", year=2026, last_number=n_invoices)
    return customers, invoices


def camt(entries: list[str]) -> bytes:
    head = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>'
        "<GrpHdr><MsgId>BENCH</MsgId><CreDtTm>2026-11-30T18:00:00</CreDtTm></GrpHdr>"
        f"<Stmt><Id>BENCH-1</Id><Acct><Id><IBAN>{ACCOUNT_IBAN}</IBAN></Id><Ccy>EUR</Ccy></Acct>"
    )
    return (head + "\n".join(entries) + "</Stmt></BkToCstmrStmt></Document>").encode()


def entry(n: int, amount: Decimal, name: str, iban: str, text: str) -> str:
    return (
        f'<Ntry><Amt Ccy="EUR">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>'
        f"<BookgDt><Dt>2026-11-{1 + n % 28:02d}</Dt></BookgDt><AcctSvcrRef>B{n:08d}</AcctSvcrRef>"
        f"<NtryDtls><TxDtls><Refs><EndToEndId>E2E{n:08d}</EndToEndId></Refs>"
        f"<RltdPties><Dbtr><Nm>{name}</Nm></Dbtr><DbtrAcct><Id><IBAN>{iban}</IBAN></Id></DbtrAcct></RltdPties>"
        f"<RmtInf><Ustrd>{text}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>"
    )


def statement_file(customers: list, invoices: list, n_lines: int, seed: int = 5) -> tuple[bytes, dict]:
    rng = random.Random(seed)
    kinds = ["ref"] * 70 + ["customer"] * 20 + ["unknown"] * 10
    entries, planned = [], {"ref": 0, "customer": 0, "unknown": 0}
    for n in range(n_lines):
        kind = kinds[n % 100]
        planned[kind] += 1
        if kind == "ref":
            inv = invoices[n]
            cust = inv.customer
            entries.append(entry(n, inv.gross_total, cust.name, cust.iban, f"Payment {inv.number} thank you"))
        elif kind == "customer":
            cust = customers[rng.randrange(len(customers))]
            amount = Decimal(rng.randint(100, 100000)) / 100
            entries.append(entry(n, amount, cust.name, cust.iban, f"Order {rng.randint(1000, 9999)}"))
        else:
            entries.append(entry(n, Decimal("42.00"), f"Stranger {n} Ltd", f"GB{n % 90 + 10:02d}NWBK{n:014d}", "misc"))
    return camt(entries), planned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=10000, help="statement lines (default 10,000)")
    parser.add_argument("--customers", type=int, default=2000, help="customers (default 2,000)")
    parser.add_argument("--profile", action="store_true", help="profile the matching under cProfile")
    parser.add_argument("--db", default="otc_bench_bank", help="bench database, dropped and recreated")
    parser.add_argument("--pg", default=common.DEFAULT_PG)
    parser.add_argument("--redis", default=common.DEFAULT_REDIS)
    args = parser.parse_args()

    env = common.bench_env(
        db_url=common.database_url(args.pg, args.db),
        redis_url=args.redis,
        queue="otc-bench-bank",
        media_root=tempfile.mkdtemp(prefix="otc-bench-bank-"),
    )
    machine = common.describe_machine("before")
    common.recreate_database(args.pg, args.db)
    common.setup_django(env)
    print(f"   migrated in {common.migrate():.1f} s", flush=True)

    from django.db import connection
    from django.db.models import Count, F, Q, Sum

    from invoicing.models import Invoice, InvoiceStatus
    from payments import bank
    from payments.models import Allocation, BankAccount, BankLine, Payment

    started = time.perf_counter()
    customers, invoices = load(args.customers, args.lines)
    raw, planned = statement_file(customers, invoices, args.lines)
    account = BankAccount.objects.create(name="Main account", iban=ACCOUNT_IBAN, currency="EUR")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    print(
        f"   loaded {len(customers)} customers, {len(invoices)} open invoices, a {len(raw) / 1e6:.1f} MB CAMT.053"
        f" in {time.perf_counter() - started:.1f} s",
        flush=True,
    )

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    load_before = common.loadavg()
    t0, c0, b0 = time.perf_counter(), time.process_time(), backend_cpu(backend)
    statement, created = bank.bank_statement_import(account=account, filename="bench.xml", raw=raw)
    t1, c1, b1 = time.perf_counter(), time.process_time(), backend_cpu(backend)
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(bank.statement_match, statement_id=statement.pk)
    else:
        bank.statement_match(statement_id=statement.pk)
    t2, c2, b2 = time.perf_counter(), time.process_time(), backend_cpu(backend)
    load_after = common.loadavg()
    assert created

    statement.refresh_from_db()
    counts = bank.statement_counts(statement)
    payments = Payment.objects.count()
    paid = Invoice.objects.filter(status=InvoiceStatus.PAID).count()
    mismatched = (
        Invoice.objects.annotate(alloc=Sum("allocations__amount"))
        .filter(Q(alloc__isnull=False) & ~Q(alloc=F("amount_paid")))
        .count()
    )
    lines_per_payment = (
        BankLine.objects.filter(payment__isnull=False).values("payment").annotate(n=Count("pk")).filter(n__gt=1).count()
    )
    again, created_again = bank.bank_statement_import(account=account, filename="again.xml", raw=raw)
    ok = (
        counts["matched"] == planned["ref"]
        and counts["suggested"] == planned["customer"]
        and counts["unmatched"] == planned["unknown"]
        and payments == counts["matched"] == paid
        and Allocation.objects.count() == payments
        and mismatched == 0
        and lines_per_payment == 0
        and statement.processed_lines == statement.total_lines == args.lines
        and not created_again
        and again.pk == statement.pk
    )
    total = t2 - t0
    ratio = total / TARGET_SECONDS
    machine += common.describe_machine("after")
    print()
    print(f"  lines               {args.lines:>8,}")
    print(f"  planned             {planned}")
    print(f"  result              {counts}")
    print(f"  payments            {payments:>8,}   paid invoices {paid:,}   BankLine rows {BankLine.objects.count():,}")
    print(
        f"  checks              {'all hold' if ok else 'FAILED'} (same file again creates nothing: {not created_again})"
    )
    print(f"  parse + store       {t1 - t0:8.2f} s   (CPU: ours {c1 - c0:.2f} s, PostgreSQL {b1 - b0:.2f} s)")
    print(f"  match + post        {t2 - t1:8.2f} s   (CPU: ours {c2 - c1:.2f} s, PostgreSQL {b2 - b1:.2f} s)")
    cpu = (c2 - c0) + (b2 - b0)
    print(f"  CPU work            {cpu:8.2f} s   (both processes: about the wall time on an idle machine, I/O aside)")
    print(
        f"  total               {total:8.2f} s   target <= {TARGET_SECONDS:.0f} s   ratio {ratio:.2f}   "
        f"{common.verdict(ratio <= 1 and ok)}"
    )
    print(f"  load average        before {load_before}   after {load_after}")
    for line in machine:
        print(f"  {line}")
    # The import queued the match task for a worker (large file); this run matched in-process.
    common.purge_queues(args.redis, "otc-bench-bank")
    if args.profile:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
