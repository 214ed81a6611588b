"""Late-payment penalties: a daily run assesses interest and the fixed fee on overdue invoices
and charges them as `penalty` invoices (series PEN), using the terms frozen on each invoice.

The run selects candidates in SQL and processes them in bounded batches of Celery tasks. A batch
locks its invoices (by primary key, the same order as payment allocation), reads their previous
assessments and payments in three set-based queries, computes each charge with the pure
functions in billing.terms, and writes assessments, penalty invoices and their lines in bulk.
Under the lock a second worker or a rerun sees the assessments already made and charges
nothing; the unique (invoice, period end) constraint backs that up.
"""

import logging
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, Max, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from billing import bulk, jobs, terms
from billing.models import TaxCategory
from billing.services import actor_user, audit_record
from invoicing.models import CreditApplication, Invoice, InvoiceKind, InvoiceLine, InvoiceStatus, PdfStatus
from invoicing.services import invoice_credit, invoice_set_number, number_block

from .models import Allocation, DunningItem, PenaltyAssessment, PenaltyRun, PenaltyRunBatch, PenaltyRunStatus

log = logging.getLogger(__name__)
BATCH_SIZE = 2000
AS_OF_REFUSAL = "Penalties are not assessed for days to come: interest is owed for the days that have passed."
TAX_NOTE = "Late-payment interest and recovery fees are compensation, outside the scope of VAT."
ASSESSABLE = (InvoiceStatus.ISSUED, InvoiceStatus.PARTIALLY_PAID, InvoiceStatus.PAID)


def candidates(*, as_of: date):
    """Invoices that may owe penalties as of `as_of`: sales invoices (never penalties or credit
    notes) past due whose terms charge interest or a fee, not capped out, and either still open
    or paid after the end of their last assessed period (interest accrued until payment is due)."""
    last_end = PenaltyAssessment.objects.filter(invoice=OuterRef("pk")).order_by("-period_end").values("period_end")[:1]
    paid_on = (
        Allocation.objects.filter(invoice=OuterRef("pk"), reversed_at__isnull=True)
        .values("invoice")
        .annotate(last=Max("payment__received_on"))
        .values("last")
    )
    credited_on = (
        CreditApplication.objects.filter(invoice=OuterRef("pk"))
        .values("invoice")
        .annotate(last=Max("credit_note__issue_date"))
        .values("last")
    )
    capped = PenaltyAssessment.objects.filter(invoice=OuterRef("pk"), capped=True)
    assessed = PenaltyAssessment.objects.filter(invoice=OuterRef("pk"))
    # Assessed up to as_of already (a rerun): an anti-join, so that a rerun rules out every invoice
    # in one pass over the assessments instead of looking up each one's last period.
    assessed_to_date = PenaltyAssessment.objects.filter(invoice=OuterRef("pk"), period_end__gte=as_of)
    return (
        Invoice.objects.filter(kind=InvoiceKind.INVOICE, status__in=ASSESSABLE, due_date__lt=as_of)
        .exclude(terms_snapshot__annual_interest_rate="0.00", terms_snapshot__fixed_fee="0.00")
        .annotate(last_end=Subquery(last_end), paid_on=Subquery(paid_on), credited_on=Subquery(credited_on))
        .exclude(Exists(assessed_to_date))
        .exclude(Exists(capped))
        # A fee-only policy charges once.
        .exclude(Q(terms_snapshot__annual_interest_rate="0.00") & Exists(assessed))
        .filter(
            Q(status__in=[InvoiceStatus.ISSUED, InvoiceStatus.PARTIALLY_PAID])
            | Q(paid_on__gt=Coalesce(F("last_end"), F("due_date")))
            | Q(credited_on__gt=Coalesce(F("last_end"), F("due_date")))
        )
    )


def _policy(invoice: Invoice) -> dict:
    snap = invoice.terms_snapshot or {}
    cap = snap.get("penalty_cap_percent")
    return {
        "annual_rate": Decimal(snap.get("annual_interest_rate") or 0),
        "fixed_fee": Decimal(snap.get("fixed_fee") or 0),
        "grace_days": int(snap.get("grace_days") or 0),
        "cap_percent": None if cap in (None, "") else Decimal(cap),
    }


def _lines_for(invoice: Invoice, charge: terms.PenaltyCharge, rate: Decimal) -> list[dict]:
    lines = []
    if charge.interest > 0:
        lines.append(
            {
                "description": (
                    f"Late-payment interest on {invoice.number} (due {invoice.due_date:%Y-%m-%d}): "
                    f"{charge.period_start:%Y-%m-%d} to {charge.period_end:%Y-%m-%d}, {charge.days} days "
                    f"at {rate}% p.a. (actual/365) on the balance outstanding each day"
                    + (", limited by the penalty cap" if charge.capped else "")
                ),
                "net": charge.interest,
            }
        )
    if charge.fee > 0:
        lines.append({"description": f"Fixed recovery fee for late payment of {invoice.number}", "net": charge.fee})
    return lines


def _stored(model, name: str, value: Decimal) -> Decimal:
    """A decimal as the database gives it back (the field's decimal places): content hashes are
    taken before the rows are written and must equal those taken over rows read back."""
    return value.quantize(Decimal(1).scaleb(-model._meta.get_field(name).decimal_places))


def issue_penalty_invoices(
    items: list[tuple[Invoice, list[tuple[str, Decimal]], str]], *, issue_date: date | None = None
) -> list[Invoice]:
    """Issue one `penalty` invoice (series PEN) per item `(overdue invoice, lines as (description,
    amount), tax note)`: numbered in one block, VAT-exempt, due at once, the overdue invoice's
    snapshots, content hash written; PDFs queued on commit in chunks. For the penalty run and for
    reminder fees; the caller holds the overdue invoices locked.

    Thousands at a time (a penalty batch), on PostgreSQL: documents and lines go in as drafts, one
    set-based INSERT each (billing.bulk), and only then is the block of numbers taken and written
    with the status and content hash in one UPDATE. The PEN sequence stays locked from there to
    the commit, so two workers' batches overlap except for that last step."""
    if not items:
        return []
    from invoicing.tasks import render_pdfs_on_commit

    issue_date = issue_date or timezone.localdate()
    seller = dict(settings.OTC_COMPANY)
    now = timezone.now()
    zero = Decimal("0.00")
    invoice_ids = bulk.reserve_ids(Invoice, len(items))
    line_ids = iter(bulk.reserve_ids(InvoiceLine, sum(len(lines) for _i, lines, _n in items)))
    docs, doc_lines = [], []
    for n, (invoice, lines, note) in enumerate(items):
        total = _stored(Invoice, "gross_total", sum((amount for _d, amount in lines), zero))
        doc = Invoice(
            id=invoice_ids[n] if invoice_ids else None,
            kind=InvoiceKind.PENALTY,
            series="PEN",
            sequence_year=issue_date.year,
            customer_id=invoice.customer_id,
            status=InvoiceStatus.DRAFT,
            issue_date=issue_date,
            due_date=issue_date,
            currency=invoice.currency,
            net_total=total,
            tax_total=zero,
            gross_total=total,
            customer_snapshot=invoice.customer_snapshot,
            terms_snapshot=invoice.terms_snapshot,
            seller_snapshot=seller,
            original=invoice,
            tax_breakdown=[{"rate": "0.00", "category": TaxCategory.EXEMPT, "taxable": str(total), "tax": "0.00"}],
            issued_at=now,
            pdf_status=PdfStatus.PENDING,
            created_at=now,
            updated_at=now,
        )
        lines = [
            InvoiceLine(
                id=next(line_ids, None),
                invoice=doc,
                position=position,
                description=description,
                quantity=_stored(InvoiceLine, "quantity", Decimal(1)),
                unit="unit",
                unit_price=_stored(InvoiceLine, "unit_price", amount),
                discount_percent=_stored(InvoiceLine, "discount_percent", zero),
                tax_percent=_stored(InvoiceLine, "tax_percent", zero),
                tax_category=TaxCategory.EXEMPT,
                tax_note=note,
                net_amount=_stored(InvoiceLine, "net_amount", amount),
            )
            for position, (description, amount) in enumerate(lines, start=1)
        ]
        docs.append(doc)
        doc_lines.append(lines)

    def number(first: int) -> None:
        for n, (doc, lines) in enumerate(zip(docs, doc_lines, strict=True)):
            doc.status = InvoiceStatus.ISSUED
            invoice_set_number(doc, first + n)
            doc.content_sha256 = doc.fingerprint(lines=lines)

    if invoice_ids:  # PostgreSQL
        bulk.insert_objects(Invoice, docs)
        bulk.insert_objects(InvoiceLine, [line for lines in doc_lines for line in lines])
        number(number_block(series="PEN", year=issue_date.year, count=len(items)))
        bulk.update_rows(
            Invoice,
            ["status", "sequence_number", "number", "content_sha256"],
            [(d.pk, d.status, d.sequence_number, d.number, d.content_sha256) for d in docs],
        )
    else:  # elsewhere the ids come from the inserts
        first = number_block(series="PEN", year=issue_date.year, count=len(items))
        for n, doc in enumerate(docs):
            doc.status = InvoiceStatus.ISSUED
            invoice_set_number(doc, first + n)
        Invoice.objects.bulk_create(docs)
        for doc, lines in zip(docs, doc_lines, strict=True):
            for line in lines:
                line.invoice = doc
        InvoiceLine.objects.bulk_create([line for lines in doc_lines for line in lines])
        number(first)
        Invoice.objects.bulk_update(docs, ["content_sha256"])
    render_pdfs_on_commit([doc.pk for doc in docs])
    return docs


def assess_batch(*, invoice_ids: list[int], as_of: date, issue_date: date | None = None, run_id: int | None = None):
    """Assess a batch of invoices; returns (assessments, penalty invoices, interest, fees)."""
    issue_date = issue_date or timezone.localdate()
    with transaction.atomic():
        invoices = list(
            Invoice.objects.select_for_update(of=("self",))
            .filter(pk__in=invoice_ids, kind=InvoiceKind.INVOICE, status__in=ASSESSABLE)
            .order_by("pk")
        )
        ids = [i.pk for i in invoices]
        history: dict[int, dict] = defaultdict(lambda: {"last": None, "charged": Decimal(0), "fee": False})
        for a in PenaltyAssessment.objects.filter(invoice_id__in=ids).values(
            "invoice_id", "period_end", "interest", "fee"
        ):
            h = history[a["invoice_id"]]
            h["last"] = max(h["last"] or a["period_end"], a["period_end"])
            h["charged"] += a["interest"] + a["fee"]
            h["fee"] = h["fee"] or a["fee"] > 0
        # Reminder fees (dunning) are late-payment charges too: they count against the cap.
        for invoice_id, fee in DunningItem.objects.filter(invoice_id__in=ids, fee__gt=0).values_list(
            "invoice_id", "fee"
        ):
            history[invoice_id]["charged"] += fee
        paid: dict[int, list] = defaultdict(list)
        # A reversed payment never paid anything; a discount taken settled as much as money did.
        settled = Allocation.objects.filter(invoice_id__in=ids, reversed_at__isnull=True).annotate(
            settled=F("amount") + F("discount")
        )
        for inv, when, amount in settled.values_list("invoice_id", "payment__received_on", "settled"):
            paid[inv].append((when, amount))
        for inv, when, amount in CreditApplication.objects.filter(invoice_id__in=ids).values_list(
            "invoice_id", "credit_note__issue_date", "amount"
        ):
            paid[inv].append((when, amount))

        planned = []
        for invoice in invoices:
            policy = _policy(invoice)
            h = history[invoice.pk]
            charge = terms.penalty_charge(
                gross=invoice.gross_total,
                due_date=invoice.due_date,
                as_of=as_of,
                payments=paid[invoice.pk],
                annual_rate=policy["annual_rate"],
                fixed_fee=policy["fixed_fee"],
                grace_days=policy["grace_days"],
                cap_percent=policy["cap_percent"],
                last_period_end=h["last"],
                charged_so_far=h["charged"],
                fee_charged=h["fee"],
                currency=invoice.currency,
            )
            if charge is None:
                continue
            # Record a zero assessment only where it closes the matter (paid, or capped out);
            # otherwise wait until something has accrued.
            if charge.total > 0 or charge.capped or invoice.status == InvoiceStatus.PAID:
                planned.append((invoice, charge, policy["annual_rate"]))

        charged = [(inv, c, r) for inv, c, r in planned if c.total > 0]
        docs = issue_penalty_invoices(
            [
                (invoice, [(spec["description"], spec["net"]) for spec in _lines_for(invoice, charge, rate)], TAX_NOTE)
                for invoice, charge, rate in charged
            ],
            issue_date=issue_date,
        )
        penalties: dict[int, Invoice] = {invoice.pk: doc for (invoice, _c, _r), doc in zip(charged, docs, strict=True)}

        bulk.insert_rows(
            PenaltyAssessment,
            [
                "invoice_id",
                "run_id",
                "period_start",
                "period_end",
                "days",
                "annual_rate",
                "interest",
                "fee",
                "capped",
                "penalty_invoice_id",
            ],
            [
                (
                    invoice.pk,
                    run_id,
                    charge.period_start,
                    charge.period_end,
                    charge.days,
                    rate,
                    charge.interest,
                    charge.fee,
                    charge.capped,
                    penalties[invoice.pk].pk if invoice.pk in penalties else None,
                )
                for invoice, charge, rate in planned
            ],
        )
        interest = sum((c.interest for _, c, _ in planned), Decimal(0))
        fees = sum((c.fee for _, c, _ in planned), Decimal(0))
        return len(planned), len(penalties), interest, fees


def run_start(*, as_of: date | None = None, actor=None, batch_size: int | None = None) -> PenaltyRun:
    """Plan a penalty run, store its batches and send them to the workers after commit. Refuses an
    as-of date after today: interest for days still to come is not owed yet. Batch size: the
    argument, else settings.OTC_PENALTY_BATCH_SIZE, else BATCH_SIZE."""
    from .tasks import penalty_assess_stored_batch

    as_of = jobs.run_as_of(as_of, refusal=AS_OF_REFUSAL)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # The planner's cost estimate for a million invoices switches JIT compilation on; it
            # costs more (about 0.35 s) than the whole scan it is meant to speed up.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL jit = off")
        ids = list(candidates(as_of=as_of).order_by("pk").values_list("pk", flat=True))
    batch_size = batch_size or getattr(settings, "OTC_PENALTY_BATCH_SIZE", None) or BATCH_SIZE
    batches = [ids[i : i + batch_size] for i in range(0, len(ids), batch_size)]
    with transaction.atomic():
        run = PenaltyRun.objects.create(
            as_of=as_of, candidates=len(ids), total_batches=len(batches), started_by=actor_user(actor)
        )
        if not batches:
            run.status = PenaltyRunStatus.DONE
            run.finished_at = timezone.now()
            run.save(update_fields=["status", "finished_at"])
            return run
        jobs.batches_send(PenaltyRunBatch, run=run, chunks=batches, task=penalty_assess_stored_batch)
    return run


def resend_lost_batches(*, older_than: timedelta | None = None) -> int:
    """Send again the batches of running penalty runs whose message was lost (see
    billing.jobs.batches_resend_lost). Returns how many were sent again."""
    from .tasks import penalty_assess_stored_batch

    running = Q(run__status=PenaltyRunStatus.RUNNING)
    return jobs.batches_resend_lost(
        PenaltyRunBatch, task=penalty_assess_stored_batch, running_runs=running, older_than=older_than
    )


def run_stored_batch(*, batch_id: int) -> None:
    """Assess a stored batch of a run and record its progress, unless it is done already."""
    if batch := jobs.batch_pending(PenaltyRunBatch, batch_id):
        run_batch(run_id=batch.run_id, invoice_ids=batch.items, batch_id=batch.pk)


def run_batch(*, run_id: int, invoice_ids: list[int], batch_id: int | None = None) -> None:
    """Assess a batch and record its progress on the run (and the stored batch done, in the same
    transaction). When another delivery of the same batch recorded it first, only what this one
    charged is added (the batch is not counted twice)."""
    run = PenaltyRun.objects.filter(pk=run_id).first()
    if run is None:
        return
    error = None
    try:
        assessments, invoices, interest, fees = assess_batch(invoice_ids=invoice_ids, as_of=run.as_of, run_id=run_id)
    except Exception as exc:  # one failing batch must not leave the run waiting forever; it is reported on it
        log.exception("Penalty run %s: batch of %s invoices failed", run_id, len(invoice_ids))
        assessments, invoices, interest, fees = 0, 0, Decimal(0), Decimal(0)
        error = {"invoices": [invoice_ids[0], invoice_ids[-1]], "error": repr(exc)[:500]}
    with transaction.atomic():
        first = batch_id is None or jobs.batch_mark_done(PenaltyRunBatch, batch_id)
        if error and first:
            locked = PenaltyRun.objects.select_for_update().get(pk=run_id)
            locked.errors = [*locked.errors, error][:200]
            locked.save(update_fields=["errors"])
        PenaltyRun.objects.filter(pk=run_id).update(
            processed_batches=F("processed_batches") + (1 if first else 0),
            assessments=F("assessments") + assessments,
            penalty_invoices=F("penalty_invoices") + invoices,
            interest_total=F("interest_total") + interest,
            fee_total=F("fee_total") + fees,
        )
        finished = PenaltyRun.objects.filter(
            pk=run_id, processed_batches__gte=F("total_batches"), status=PenaltyRunStatus.RUNNING
        ).update(status=PenaltyRunStatus.DONE, finished_at=timezone.now())
    if finished and connection.vendor == "postgresql":
        # A run can add hundreds of thousands of assessments at once; the planner's statistics
        # catch up only when autovacuum next passes, and until then the next run's candidate
        # query (a rerun the same day, say) is planned as if the table were still small.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE payments_penaltyassessment")


@transaction.atomic
def penalty_waive(*, assessment: PenaltyAssessment, reason: str, actor=None) -> PenaltyAssessment:
    """Waive a penalty: a credit note cancels its penalty invoice; audited."""
    assessment = PenaltyAssessment.objects.select_for_update().get(pk=assessment.pk)
    if assessment.waived_at:
        from billing.errors import InvalidTransition

        raise InvalidTransition(f"This penalty was waived on {assessment.waived_at:%Y-%m-%d}.")
    if assessment.penalty_invoice_id:
        invoice_credit(invoice=assessment.penalty_invoice, reason=f"Penalty waived: {reason}", actor=actor)
    assessment.waived_at = timezone.now()
    assessment.waived_by = actor_user(actor)
    assessment.waive_reason = reason
    assessment.save(update_fields=["waived_at", "waived_by", "waive_reason"])
    audit_record(
        actor=actor,
        action="penalty.waived",
        obj=assessment.invoice,
        changes={"period_end": str(assessment.period_end), "amount": str(assessment.total), "reason": reason},
    )
    return assessment
