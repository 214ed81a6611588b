import logging
from datetime import timedelta

from celery import shared_task
from celery.signals import worker_init
from django.utils import timezone

from . import services
from .models import Invoice, PdfStatus

log = logging.getLogger(__name__)


@worker_init.connect
def _prepare_worker_parent(**kwargs) -> None:
    """In a worker's parent process, before its pool forks: import WeasyPrint and the libraries it
    loads (Pango, HarfBuzz, fontTools, about 35 MB), so that the children share those pages instead
    of each loading its own copy with its first PDF. The font configuration stays per process
    (invoicing.pdf builds it on first use, in the child).

    Then freeze what the parent has allocated out of the garbage collector's reach: the children's
    collections no longer walk (and so copy, page by page) the objects they inherit from it.
    Measured on the PDF bench: private memory of two children 182 -> 105 MB, throughput +4 %
    (bench/results/pdf.md)."""
    import gc

    import weasyprint.pdf.fonts
    import weasyprint.text.fonts  # noqa: F401

    gc.freeze()


@shared_task(bind=True, acks_late=True, max_retries=5, default_retry_delay=30, time_limit=120, soft_time_limit=100)
def invoice_render_pdf(self, invoice_id: int) -> None:
    """Render an issued invoice's PDF; retried on failure, marked failed after the last try."""
    try:
        services.invoice_render_pdf(invoice_id=invoice_id)
    except Exception as exc:
        log.exception("PDF rendering failed for invoice %s", invoice_id)
        if self.request.retries >= self.max_retries:
            services.invoice_mark_pdf_failed(invoice_id=invoice_id, error=str(exc))
            return
        raise self.retry(exc=exc) from exc


# A batch job (penalty run) issues thousands of invoices at once: one message per chunk, not per invoice.
PDF_CHUNK = 50


@shared_task(acks_late=True, time_limit=900, soft_time_limit=840)
def invoice_render_pdfs(invoice_ids: list[int]) -> None:
    """Render a chunk of invoices' PDFs, one after the other, as `invoice_render_pdf` does each
    (idempotent: a ready PDF is kept, so a redelivered chunk redoes nothing). An invoice that fails
    here goes on to its own `invoice_render_pdf` task, with that task's retries and failure marking."""
    for invoice_id in invoice_ids:
        try:
            services.invoice_render_pdf(invoice_id=invoice_id)
        except Exception:
            log.exception("PDF rendering failed for invoice %s in a chunk; retried on its own", invoice_id)
            invoice_render_pdf.delay(invoice_id)


def render_pdfs_on_commit(invoice_ids: list[int]) -> None:
    """Queue the PDFs of many invoices, in chunks of PDF_CHUNK, once the transaction commits."""
    from billing.jobs import enqueue_on_commit

    for start in range(0, len(invoice_ids), PDF_CHUNK):
        enqueue_on_commit(invoice_render_pdfs, list(invoice_ids[start : start + PDF_CHUNK]))


@shared_task
def invoice_sweep_pending_pdfs(older_than_minutes: int = 10, batch: int = 500) -> int:
    """Re-enqueue PDFs a lost message left pending."""
    cutoff = timezone.now() - timedelta(minutes=older_than_minutes)
    ids = list(
        Invoice.objects.filter(pdf_status=PdfStatus.PENDING, updated_at__lt=cutoff).values_list("pk", flat=True)[:batch]
    )
    for pk in ids:
        invoice_render_pdf.delay(pk)
    return len(ids)


@shared_task(acks_late=True, time_limit=1800, soft_time_limit=1700)
def billing_run_batch(run_id: int, groups: list[list[int]]) -> None:
    """Bill one bounded batch of a billing run, carried in the message (runs started before batches
    were stored; new runs send billing_run_bill_batch). Safe to redeliver: billed orders are skipped."""
    from .billing_runs import run_batch

    run_batch(run_id=run_id, groups=groups)


@shared_task(acks_late=True, time_limit=1800, soft_time_limit=1700)
def billing_run_bill_batch(batch_id: int) -> None:
    """Bill one stored batch of a billing run. Safe to redeliver: a billed batch is left alone."""
    from .billing_runs import run_stored_batch

    run_stored_batch(batch_id=batch_id)


@shared_task
def billing_run_resend_lost_batches() -> int:
    """Beat: send again the batches of running billing runs whose message was lost."""
    from .billing_runs import resend_lost_batches

    return resend_lost_batches()


@shared_task
def billing_run_daily() -> int:
    """Beat: the daily billing run, as of today."""
    from .billing_runs import run_start

    return run_start().pk


# --- Delivery ------------------------------------------------------------------------------------


def _delivery_backoff(retries: int) -> int:
    """Seconds before the next try: 1, 2, 4, 8, 16 minutes (about half an hour in all)."""
    return min(60 * 2**retries, 3600)


@shared_task(bind=True, acks_late=True, max_retries=5, time_limit=120, soft_time_limit=100)
def invoice_deliver(self, invoice_id: int) -> str:
    """Deliver an invoice by its billing method (e-mail, or a print batch). Mail server errors (and
    other passing failures) are retried with backoff; after the last try, or at once when retrying
    cannot help (a domain error: no PDF, no address), the delivery is marked failed."""
    from billing.errors import DomainError

    from . import delivery

    try:
        return delivery.invoice_deliver(invoice_id=invoice_id)
    except DomainError as exc:
        log.warning("Invoice %s not delivered: %s", invoice_id, exc.message)
        delivery.invoice_mark_delivery_failed(invoice_id=invoice_id, error=exc.message)
        return "failed"
    except Exception as exc:  # smtplib.SMTPException, refused connections, timeouts, a busy database
        log.warning("Delivering invoice %s failed (try %s): %s", invoice_id, self.request.retries + 1, exc)
        if self.request.retries >= self.max_retries:
            delivery.invoice_mark_delivery_failed(invoice_id=invoice_id, error=f"{type(exc).__name__}: {exc}")
            return "failed"
        raise self.retry(exc=exc, countdown=_delivery_backoff(self.request.retries)) from exc


@shared_task
def invoice_sweep_pending_deliveries(older_than_minutes: int = 45, batch: int = 500) -> int:
    """Re-enqueue deliveries a lost message left pending (longer than all retries take)."""
    from .models import DeliveryStatus

    cutoff = timezone.now() - timedelta(minutes=older_than_minutes)
    ids = list(
        Invoice.objects.filter(delivery_status=DeliveryStatus.PENDING, updated_at__lt=cutoff)
        .order_by("updated_at")
        .values_list("pk", flat=True)[:batch]
    )
    for pk in ids:
        invoice_deliver.delay(pk)
    return len(ids)


@shared_task(acks_late=True, time_limit=1800, soft_time_limit=1700)
def print_batches_close_due() -> list[int]:
    """Beat, nightly: close the open print batches of past days into their merged PDFs."""
    from .delivery import print_batches_close_due as close_due

    return close_due()
