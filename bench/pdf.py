"""Invoice PDF benchmark: the real rendering pipeline against bare WeasyPrint, and wkhtmltopdf as a peer.

Usage (from the repository root; PostgreSQL on 127.0.0.1:5432 as user postgres, Redis on 6379):

    .venv/bin/python bench/pdf.py [--invoices N]        # N defaults to 400 (a few minutes here)
    .venv/bin/python bench/pdf.py --invoices 10000 --bare-max 1000 --max-tasks-per-child 0
                                                        # the worker RSS check (long): children never
                                                        # recycled, so a leak would show

What it does, in one run:
1. (re)creates its own database `otc_bench_pdf` (--db), migrates it and bulk-loads N fulfilled orders
   of 5 lines (20 % and 5.5 %, every 4th with an exempt line and its legal note) for 200 customers;
2. issues one invoice per order with the real services (invoicing.billing_runs.bill_group: draft,
   gapless number, snapshots), not timed: issuing is the caller's work, the pipeline starts after it;
3. writes each invoice's HTML (invoicing.pdf.invoice_html) to a temporary folder;
4. bare, first half: renders half of those HTML files (of the first --bare-max, when given) with
   invoicing.pdf.html_to_pdf (WeasyPrint with the same per-process caches as the worker, nothing
   else: no database, Celery, Factur-X or storage) in 2 processes;
5. pipeline: starts a real worker, `celery -A otc worker --pool prefork --concurrency 2`, on the
   bench's own Redis db (--redis, default db 9) and database, then enqueues invoicing.tasks.
   invoice_render_pdf for every invoice, exactly as invoice_issue does on commit, and waits until every
   PDF is stored. Each task runs invoicing.services.invoice_render_pdf as it is: render the page as a
   Factur-X PDF/A-3b with its XML in one pass (invoicing.einvoice.facturx_pdf), store the file and
   its SHA-256, schedule the delivery. Delivery tasks go to a queue this
   worker does not consume (they are purged at the end): sending is not part of what is measured.
   Throughput = N / (last pdf_rendered_at - moment the first task was enqueued). The worker's RSS (sum
   of its prefork children, from /proc) is read when it is idle at start, once warm (the first
   reading after 5 % of the invoices), over the last 5 % (the highest reading there: a child replaced
   after its max tasks starts small, so a single reading at the very end can miss a grown child), and
   at its peak;
6. bare, second half (bare runs before and after the pipeline share out the noise of a busy machine);
7. peer: Debian's wkhtmltopdf on --wk-samples of the same HTML files, one process per invoice, CPU
   seconds from resource.getrusage(RUSAGE_CHILDREN), against ours: the bare renderers' CPU time per
   render (and, for comparison, plain weasyprint.HTML(string).write_pdf() on 40 of the files);
8. in one process, interleaved on 40 invoices: CPU time of the bare render against the whole task
   body (invoicing.services.invoice_render_pdf), the ratio without the noise of a shared machine;
9. prints every figure with its target and PASS/MISS, and the machine's load before and after.

The bench database is kept for inspection (dropped by the next run); PDFs and HTML files live in a
temporary folder removed at the end (--keep-files keeps it).
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, bench/ comes first on sys.path and bench/orders.py would shadow the orders app.
sys.path[0] = str(ROOT)

import argparse  # noqa: E402
import io  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from bench import common  # noqa: E402

TARGET_RATIO = 0.85
TARGET_RENDER_MS = 150.0
TARGET_RSS_MB = 250.0
TARGET_PEER_RATIO = 1.5
RENDER_QUEUE = "otc-bench-pdf"
DELIVERY_QUEUE = "otc-bench-pdf-deliveries"  # what the worker enqueues itself; never consumed here
ISSUE_QUEUE = "otc-bench-pdf-issued"  # the render tasks invoice_issue enqueues on commit; purged
WKHTMLTOPDF = "/usr/bin/wkhtmltopdf"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invoices", type=int, default=400, help="one-page invoices to render (default 400)")
    parser.add_argument("--concurrency", type=int, default=2, help="worker and bare processes (default 2)")
    parser.add_argument(
        "--bare-max", type=int, default=None, help="render at most this many invoices bare (default: all N)"
    )
    parser.add_argument("--wk-samples", type=int, default=100, help="invoices rendered by wkhtmltopdf (default 100)")
    parser.add_argument(
        "--max-tasks-per-child",
        type=int,
        default=None,
        help="override the product's CELERY_WORKER_MAX_TASKS_PER_CHILD (0: never recycle a child)",
    )
    parser.add_argument("--db", default="otc_bench_pdf", help="bench database, dropped and recreated")
    parser.add_argument("--pg", default=common.DEFAULT_PG)
    parser.add_argument("--redis", default=common.DEFAULT_REDIS)
    parser.add_argument("--keep-files", action="store_true", help="keep the temporary folder (HTML and PDFs)")
    return parser.parse_args()


# --- Bare renderer (runs in pool processes) ----------------------------------------------------


def _bare_one(path: str) -> tuple[float, float]:
    from invoicing.pdf import html_to_pdf

    html = Path(path).read_text()
    wall, cpu = time.perf_counter(), time.process_time()
    data = html_to_pdf(html)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if not data.startswith(b"%PDF"):
        raise RuntimeError(f"{path}: not a PDF")
    return wall * 1000, cpu * 1000


def bare(paths: list[str], processes: int) -> tuple[float, list[tuple[float, float]], float]:
    """Render `paths` in `processes` processes: (wall seconds, [(render ms, cpu ms)], child CPU s)."""
    from django.db import connections

    connections.close_all()  # no database connection crosses the fork
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        timings = pool.map(_bare_one, paths, chunksize=4)
        pool.close()
        pool.join()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, timings, cpu


# --- Pipeline ------------------------------------------------------------------------------------


def issue_all(order_ids: list[int]) -> list[int]:
    from django.utils import timezone

    from invoicing.billing_runs import bill_group
    from invoicing.models import Invoice

    today = timezone.localdate()
    for n, pk in enumerate(order_ids, start=1):
        bill_group(order_ids=[pk], issue_date=today)
        if n % 1000 == 0:
            print(f"    issued {n}", flush=True)
    return list(Invoice.objects.order_by("pk").values_list("pk", flat=True))


def pipeline(args, env: dict, invoice_ids: list[int], workdir: str) -> dict:
    from invoicing.models import Invoice, PdfStatus
    from invoicing.tasks import invoice_render_pdf

    extra = []
    if args.max_tasks_per_child is not None:
        # Celery wants a positive number: "never recycle" is a number no run reaches.
        extra = ["--max-tasks-per-child", str(args.max_tasks_per_child or 10**9)]
    worker_env = {**env, "CELERY_QUEUE": DELIVERY_QUEUE}
    log_path = os.path.join(workdir, "worker.log")
    proc = common.start_worker(
        worker_env, queues=RENDER_QUEUE, concurrency=args.concurrency, log_path=log_path, name="bench-pdf", extra=extra
    )
    try:
        time.sleep(1.0)  # let the children settle after the first ping
        memory = {"start": common.memory_mb(common.worker_children(proc.pid))}
        n = len(invoice_ids)
        warm_at = max(20, n // 20)
        peak = peak_child = 0.0
        t0 = time.time()
        for pk in invoice_ids:
            invoice_render_pdf.apply_async((pk,), queue=RENDER_QUEUE)
        next_sample = 0.0
        while True:
            done = Invoice.objects.filter(pdf_status__in=[PdfStatus.READY, PdfStatus.FAILED]).count()
            now = time.monotonic()
            if now >= next_sample:
                # One walk of each child's page tables per reading (it holds the child's memory map
                # lock): the sum is added up from the per-child readings.
                each = [common.memory_mb([pid]) for pid in common.worker_children(proc.pid)]
                sample = {key: sum(m[key] for m in each) for key in ("rss", "pss", "uss")}
                peak = max(peak, sample["rss"])
                peak_child = max([peak_child] + [m["rss"] for m in each])
                if "warm" not in memory and done >= warm_at:
                    memory["warm"] = sample
                if done >= n - warm_at and sample["rss"] >= memory.get("end", {"rss": -1.0})["rss"]:
                    memory["end"] = sample
                next_sample = now + 1.0
            if done >= n:
                break
            if proc.poll() is not None:
                raise SystemExit(f"The worker died; see {log_path}")
            time.sleep(0.25)
        final = common.memory_mb(common.worker_children(proc.pid))
        if final["rss"] >= memory.get("end", {"rss": -1.0})["rss"]:
            memory["end"] = final
        memory["each"] = [common.memory_mb([pid]) for pid in common.worker_children(proc.pid)]
        memory["parent"] = common.memory_mb([proc.pid])
        memory.setdefault("warm", memory["end"])
        peak = max(peak, memory["end"]["rss"])
        peak_child = max([peak_child] + [m["rss"] for m in memory["each"]])
    finally:
        common.stop_worker(proc)
    last = Invoice.objects.order_by("-pdf_rendered_at").values_list("pdf_rendered_at", flat=True).first()
    failed = list(Invoice.objects.filter(pdf_status=PdfStatus.FAILED).values_list("number", "pdf_error")[:5])
    return {
        "seconds": last.timestamp() - t0,
        "memory": memory,
        "rss_peak": peak,
        "rss_peak_child": peak_child,
        "failed": failed,
        "log": log_path,
    }


def check_stored(invoice_id: int) -> str:
    """A stored PDF, read back: its text names the invoice, and Factur-X rides inside it."""
    from pypdf import PdfReader

    from invoicing.models import Invoice

    invoice = Invoice.objects.get(pk=invoice_id)
    with invoice.pdf.open("rb") as f:
        reader = PdfReader(io.BytesIO(f.read()))
    text = reader.pages[0].extract_text()
    attachments = sorted(reader.attachments)
    return (
        f"{invoice.number}: {len(reader.pages)} page(s), number printed: {invoice.number in text}, "
        f"attachments: {', '.join(attachments) or 'none'}, {invoice.pdf.size} bytes"
    )


def plain_weasyprint(paths: list[str]) -> float:
    """CPU ms median of WeasyPrint used the plain way, HTML(string=...).write_pdf(), which builds a
    new font configuration and parses the stylesheet for every document (what invoicing.pdf did
    before html_to_pdf kept them per process). In this process, one at a time."""
    from weasyprint import HTML

    timings = []
    for path in paths:
        html = Path(path).read_text()
        cpu = time.process_time()
        HTML(string=html, base_url=str(ROOT)).write_pdf()
        timings.append((time.process_time() - cpu) * 1000)
    return common.median(timings)


def cpu_compare(invoice_ids: list[int], paths: list[str], rounds: int = 2) -> tuple[float, float]:
    """In this process, one at a time, interleaved: CPU ms (median) of the bare render of an
    invoice's HTML and of the whole task body (invoicing.services.invoice_render_pdf: read, render
    the Factur-X PDF, store, schedule the delivery) for the same invoice. CPU time of this process
    only (not PostgreSQL's or Redis's), so it moves little with the machine's load."""
    from invoicing import services
    from invoicing.models import Invoice, PdfStatus
    from invoicing.pdf import html_to_pdf

    htmls = [Path(path).read_text() for path in paths]
    html_to_pdf(htmls[0])  # per-process caches, as in a warm worker child
    bare_ms, task_ms = [], []
    for _ in range(rounds):
        Invoice.objects.filter(pk__in=invoice_ids).update(pdf_status=PdfStatus.PENDING, pdf="")
        for pk, html in zip(invoice_ids, htmls, strict=True):
            cpu = time.process_time()
            html_to_pdf(html)
            bare_ms.append((time.process_time() - cpu) * 1000)
            cpu = time.process_time()
            services.invoice_render_pdf(invoice_id=pk)
            task_ms.append((time.process_time() - cpu) * 1000)
    return common.median(bare_ms), common.median(task_ms)


# --- Peer ----------------------------------------------------------------------------------------


def wkhtmltopdf(paths: list[str], workdir: str) -> tuple[float, int] | None:
    """CPU seconds per invoice of wkhtmltopdf, one process per invoice, same page size and margins."""
    if not os.path.exists(WKHTMLTOPDF):
        return None
    runtime = os.path.join(workdir, "xdg")
    os.makedirs(runtime, mode=0o700, exist_ok=True)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": runtime}
    out = os.path.join(workdir, "wk.pdf")
    margins = ["-T", "12mm", "-R", "20mm", "-B", "18mm", "-L", "25mm"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for path in paths:
        subprocess.run(
            [WKHTMLTOPDF, "-q", "--page-size", "A4", *margins, "--disable-smart-shrinking", path, out],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(out, "rb") as f:
        if not f.read(4) == b"%PDF":
            raise RuntimeError("wkhtmltopdf wrote no PDF")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), len(paths)


# --- Main ----------------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    workdir = tempfile.mkdtemp(prefix="otc-bench-pdf-")
    media = os.path.join(workdir, "media")
    env = common.bench_env(
        db_url=common.database_url(args.pg, args.db), redis_url=args.redis, queue=ISSUE_QUEUE, media_root=media
    )
    machine = common.describe_machine("before")
    try:
        print(f"1. database {args.db}: recreate, migrate, load {args.invoices} fulfilled orders of 5 lines", flush=True)
        common.recreate_database(args.pg, args.db)
        common.setup_django(env)
        common.purge_queues(args.redis, RENDER_QUEUE, DELIVERY_QUEUE, ISSUE_QUEUE)
        print(f"   migrated in {common.migrate():.1f} s", flush=True)
        loaded = common.load_fulfilled_orders(n_orders=args.invoices, n_customers=200, exempt_every=4)
        print(f"   loaded {loaded}", flush=True)

        import weasyprint  # noqa: F401 - imported once here, not once per bare process
        from django.conf import settings

        from invoicing.models import Invoice
        from invoicing.pdf import invoice_html
        from orders.models import Order

        print("2. issue one invoice per order (real services, not timed)", flush=True)
        started = time.perf_counter()
        invoice_ids = issue_all(list(Order.objects.order_by("pk").values_list("pk", flat=True)))
        issued_s = time.perf_counter() - started
        common.purge_queues(args.redis, ISSUE_QUEUE)
        print(f"   {len(invoice_ids)} invoices issued in {issued_s:.1f} s", flush=True)

        print("3. write each invoice's HTML (invoicing.pdf.invoice_html)", flush=True)
        html_dir = os.path.join(workdir, "html")
        os.makedirs(html_dir)
        paths = []
        for invoice in Invoice.objects.order_by("pk").iterator(chunk_size=500):
            path = os.path.join(html_dir, f"{invoice.number}.html")
            Path(path).write_text(invoice_html(invoice))
            paths.append(path)
        bare_paths = paths[: args.bare_max] if args.bare_max else paths
        half = len(bare_paths) // 2

        print(f"4. bare WeasyPrint, first half ({half} invoices, {args.concurrency} processes)", flush=True)
        wall_a, timings_a, cpu_a = bare(bare_paths[:half], args.concurrency)

        print(f"5. pipeline: worker --concurrency {args.concurrency}, {len(invoice_ids)} invoices", flush=True)
        result = pipeline(args, env, invoice_ids, workdir)
        load_after_pipeline = common.loadavg()
        stored = check_stored(invoice_ids[0])

        print(f"6. bare WeasyPrint, second half ({len(bare_paths) - half} invoices)", flush=True)
        wall_b, timings_b, cpu_b = bare(bare_paths[half:], args.concurrency)

        samples = paths[: min(args.wk_samples, len(paths))]
        print(f"7. wkhtmltopdf on {len(samples)} of the same HTML files", flush=True)
        peer = wkhtmltopdf(samples, workdir)
        plain_ms = plain_weasyprint(paths[: min(40, len(paths))])
        print("8. in one process: CPU of the bare render against the whole task, same invoices", flush=True)
        cpu_bare_ms, cpu_task_ms = cpu_compare(invoice_ids[:40], paths[:40])
    finally:
        common.purge_queues(args.redis, RENDER_QUEUE, DELIVERY_QUEUE, ISSUE_QUEUE)
        if not args.keep_files:
            shutil.rmtree(workdir, ignore_errors=True)
    machine += common.describe_machine("after")

    n = len(invoice_ids)
    timings = timings_a + timings_b
    n_bare = len(timings)
    bare_rate = n_bare / (wall_a + wall_b)
    pipe_rate = n / result["seconds"]
    ratio = pipe_rate / bare_rate
    render_ms = common.median([t[0] for t in timings])
    render_cpu_ms = common.median([t[1] for t in timings])
    ours_cpu = sum(t[1] for t in timings) / 1000 / n_bare  # steady state: per render, in the renderer process
    ours_cpu_children = (cpu_a + cpu_b) / n_bare  # the bare processes whole, from RUSAGE_CHILDREN
    mem = result["memory"]
    flat = mem["end"]["rss"] <= mem["warm"]["rss"] * 1.10 + 5
    mtpc = args.max_tasks_per_child
    if mtpc is None:
        mtpc = settings.CELERY_WORKER_MAX_TASKS_PER_CHILD

    print()
    print(f"Invoice PDF benchmark: {n} one-page invoices (5 lines, 2-3 VAT rates), {args.concurrency} processes each")
    print(f"  pipeline {pipe_rate:7.1f} invoices/s  ({n} in {result['seconds']:.1f} s: Factur-X PDF, store)")
    print(
        f"  bare     {bare_rate:7.1f} invoices/s  ({n_bare} in {wall_a + wall_b:.1f} s: invoicing.pdf.html_to_pdf only)"
    )
    print(
        f"  ratio pipeline/bare     {ratio:7.2f}      target >= {TARGET_RATIO}  {common.verdict(ratio >= TARGET_RATIO)}"
    )
    print(
        f"  bare render, median     {render_ms:7.1f} ms   target <= {TARGET_RENDER_MS:.0f} ms  "
        f"{common.verdict(render_ms <= TARGET_RENDER_MS)}   (wall time, 2 at once; CPU median {render_cpu_ms:.1f} ms)"
    )
    print(
        f"  worker RSS, children    start {mem['start']['rss']:.0f} MB, warm {mem['warm']['rss']:.0f} MB, "
        f"end (highest over the last 5 %) {mem['end']['rss']:.0f} MB, peak {result['rss_peak']:.0f} MB   "
        f"target flat, <= {TARGET_RSS_MB:.0f} MB   "
        f"flat: {common.verdict(flat)}, size: {common.verdict(result['rss_peak'] <= TARGET_RSS_MB)}"
    )
    print(
        f"      same children, end: PSS {mem['end']['pss']:.0f} MB, private {mem['end']['uss']:.0f} MB "
        f"(RSS counts the pages each child shares with the worker's parent); max tasks per child: {mtpc or 'unlimited'}"
    )
    each = ", ".join(f"{m['rss']:.0f}" for m in mem["each"])
    print(
        f"      each child at the end: RSS {each} MB, largest child at any reading {result['rss_peak_child']:.0f} MB "
        f"(per-process reading of the target: {common.verdict(result['rss_peak_child'] <= TARGET_RSS_MB)}); "
        f"the worker's parent: "
        f"RSS {mem['parent']['rss']:.0f} MB, PSS {mem['parent']['pss']:.0f} MB (not in the sums)"
    )
    if peer is None:
        print("  wkhtmltopdf             not installed: no peer figure")
    else:
        wk_cpu = peer[0] / peer[1]
        peer_ratio = ours_cpu / wk_cpu
        print(
            f"  CPU s per invoice       ours {ours_cpu:.3f} s, wkhtmltopdf {wk_cpu:.3f} s   ratio {peer_ratio:.2f}x   "
            f"aim <= {TARGET_PEER_RATIO}x   {common.verdict(peer_ratio <= TARGET_PEER_RATIO)}"
        )
        print(
            f"      wkhtmltopdf: one process per invoice ({peer[1]} invoices, RUSAGE_CHILDREN); ours: per render in a "
            f"long-lived process ({ours_cpu_children:.3f} s with the bare processes' start-up, RUSAGE_CHILDREN)"
        )
    print(
        f"  for comparison: plain weasyprint.HTML(string).write_pdf(), CPU median {plain_ms:.1f} ms "
        f"(new font configuration and stylesheet parse per document; {min(40, n)} invoices, one process)"
    )
    print(
        f"  one process, CPU median per invoice: bare render {cpu_bare_ms:.1f} ms, whole task {cpu_task_ms:.1f} ms: "
        f"bare/task {cpu_bare_ms / cpu_task_ms:.2f} (the ratio above without the machine's load; 40 invoices x 2)"
    )
    print(f"  issued {n} invoices in {issued_s:.1f} s beforehand (not timed); stored PDF read back: {stored}")
    if result["failed"]:
        print(f"  FAILED PDFs: {result['failed']} (worker log {result['log']})")
    for line in [*machine, f"right after the pipeline: load average {load_after_pipeline}"]:
        print(f"  {line}")


if __name__ == "__main__":
    main()
