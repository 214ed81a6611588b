from decimal import Decimal

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Round
from django.urls import reverse

from billing.models import MONEY, Customer, PaymentMethod, RunBatch
from invoicing.models import Invoice


class PaymentSource(models.TextChoices):
    """Where the payment was recorded from."""

    UI = "ui", "Browser"
    API = "api", "API"
    BANK_IMPORT = "bank_import", "Bank import"
    GATEWAY = "gateway", "Payment gateway"


class PaymentStatus(models.TextChoices):
    """A payment is received; a bounced check or a chargeback reverses it (its allocations stop
    counting, its invoices reopen). Reversed is final."""

    RECEIVED = "received", "Received"
    REVERSED = "reversed", "Reversed"


class Payment(models.Model):
    number = models.CharField(max_length=30, unique=True, blank=True)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="payments")
    method = models.CharField(max_length=30, choices=PaymentMethod.choices)
    method_accepted = models.BooleanField(default=True, help_text="False when the terms do not list this method.")
    amount = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3)
    received_on = models.DateField()
    reference = models.CharField(max_length=140, blank=True, help_text="Bank or gateway reference, remittance text.")
    source = models.CharField(max_length=20, choices=PaymentSource.choices, default=PaymentSource.UI)
    allocated_amount = models.DecimalField(**MONEY, default=Decimal("0"))
    refunded_amount = models.DecimalField(**MONEY, default=Decimal("0"))
    status = models.CharField(max_length=10, choices=PaymentStatus.choices, default=PaymentStatus.RECEIVED)
    reversed_at = models.DateTimeField(null=True, blank=True)
    reversed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reversal_reason = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_on", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
            models.CheckConstraint(
                condition=Q(allocated_amount__gte=0) & Q(refunded_amount__gte=0), name="payment_used_nonneg"
            ),
            models.CheckConstraint(
                condition=Q(allocated_amount__lte=Round(F("amount") - F("refunded_amount"), 2)),
                name="payment_allocated_plus_refunded_within_amount",
            ),
            # A reversed payment holds nothing: no allocation counts, nothing was refunded, and we know when.
            models.CheckConstraint(
                condition=Q(status="received", reversed_at__isnull=True)
                | Q(status="reversed", reversed_at__isnull=False, allocated_amount=0, refunded_amount=0),
                name="payment_reversed_holds_nothing",
            ),
        ]
        indexes = [models.Index(fields=["customer", "received_on"])]

    def __str__(self):
        return self.number or f"Payment #{self.pk}"

    def get_absolute_url(self):
        return reverse("payment-detail", args=[self.pk])

    @property
    def unallocated_amount(self) -> Decimal:
        if self.status == PaymentStatus.REVERSED:
            return Decimal("0")
        return self.amount - self.allocated_amount - self.refunded_amount

    @property
    def is_reversed(self) -> bool:
        return self.status == PaymentStatus.REVERSED


class Allocation(models.Model):
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="allocations")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="allocations")
    amount = models.DecimalField(**MONEY)
    discount = models.DecimalField(
        **MONEY, default=Decimal("0"), help_text="Early-payment discount taken with this allocation."
    )
    reversed_at = models.DateTimeField(
        null=True, blank=True, help_text="Set when the payment was reversed; the allocation then counts for nothing."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="allocation_amount_positive"),
            models.CheckConstraint(condition=Q(discount__gte=0), name="allocation_discount_nonneg"),
        ]

    def __str__(self):
        return f"{self.payment} -> {self.invoice}: {self.amount}"

    @property
    def settled(self) -> Decimal:
        """What the allocation takes off the invoice's balance: the money plus the discount."""
        return self.amount + self.discount


class PenaltyRunStatus(models.TextChoices):
    """A penalty run is planned, then its batches run on workers until all are done."""

    RUNNING = "running", "Running"
    DONE = "done", "Done"


class PenaltyRun(models.Model):
    """One daily assessment of late-payment penalties as of a date."""

    as_of = models.DateField()
    status = models.CharField(max_length=10, choices=PenaltyRunStatus.choices, default=PenaltyRunStatus.RUNNING)
    total_batches = models.PositiveIntegerField(default=0)
    processed_batches = models.PositiveIntegerField(default=0)
    candidates = models.PositiveIntegerField(default=0)
    assessments = models.PositiveIntegerField(default=0)
    penalty_invoices = models.PositiveIntegerField(default=0)
    interest_total = models.DecimalField(**MONEY, default=Decimal("0"))
    fee_total = models.DecimalField(**MONEY, default=Decimal("0"))
    errors = models.JSONField(default=list, blank=True, help_text="Batches that failed: first and last invoice id.")
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who started the run from the UI; empty for the daily run and the command.",
    )
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(processed_batches__lte=F("total_batches")), name="penaltyrun_progress_within_total"
            ),
        ]

    def __str__(self):
        return f"Penalty run #{self.pk} as of {self.as_of}"

    @property
    def progress_percent(self) -> int:
        return 100 if not self.total_batches else int(self.processed_batches * 100 / self.total_batches)


class PenaltyRunBatch(RunBatch):
    """A stored batch of a penalty run: its `items` are the ids of the invoices it assesses."""

    run = models.ForeignKey(PenaltyRun, on_delete=models.CASCADE, related_name="batches")


class PenaltyAssessment(models.Model):
    """Interest and fee charged on one overdue invoice for one period. One per invoice and
    period end, so reruns, a second worker or a retried task charge nothing more."""

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="penalty_assessments")
    run = models.ForeignKey(PenaltyRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    period_start = models.DateField()
    period_end = models.DateField()
    days = models.PositiveIntegerField()
    annual_rate = models.DecimalField(max_digits=5, decimal_places=2)
    interest = models.DecimalField(**MONEY)
    fee = models.DecimalField(**MONEY)
    capped = models.BooleanField(default=False)
    penalty_invoice = models.OneToOneField(
        Invoice, null=True, blank=True, on_delete=models.PROTECT, related_name="penalty_assessment"
    )
    waived_at = models.DateTimeField(null=True, blank=True)
    waived_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    waive_reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["invoice", "period_end"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "period_end"], name="penalty_once_per_invoice_and_period"),
            models.CheckConstraint(condition=Q(period_end__gte=F("period_start")), name="penalty_period_ordered"),
            models.CheckConstraint(condition=Q(interest__gte=0) & Q(fee__gte=0), name="penalty_amounts_nonneg"),
        ]
        indexes = [models.Index(fields=["invoice", "-period_end"])]

    def __str__(self):
        return f"{self.invoice}: {self.period_start}..{self.period_end} {self.interest + self.fee}"

    @property
    def total(self) -> Decimal:
        return self.interest + self.fee


class StatementDelivery(models.Model):
    """A customer statement e-mailed for a month. One per customer and month (the period is the
    month's first day), so reruns and a second worker of the monthly job send nothing twice."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="statement_deliveries")
    period = models.DateField(help_text="First day of the month the statement was sent for.")
    as_of = models.DateField()
    recipients = models.JSONField(default=list, blank=True)
    open_total = models.DecimalField(**MONEY)
    credit_total = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3)
    sent_at = models.DateTimeField()

    class Meta:
        ordering = ["-period", "customer"]
        verbose_name_plural = "statement deliveries"
        constraints = [
            models.UniqueConstraint(fields=["customer", "period"], name="statementdelivery_once_per_month"),
            models.CheckConstraint(condition=Q(period__day=1), name="statementdelivery_period_is_month_start"),
        ]

    def __str__(self):
        return f"Statement {self.customer} {self.period:%Y-%m}"


# --- Bank statements -----------------------------------------------------------------------------


class BankAccount(models.Model):
    """One of our own bank accounts; statements of it are imported. CSV exports differ per bank, so
    each account keeps how to read its CSV files (`csv_mapping`, see payments.bank.CSV_MAPPING_KEYS)."""

    name = models.CharField(max_length=100)
    iban = models.CharField("IBAN", max_length=34, unique=True, help_text="Without spaces.")
    currency = models.CharField(max_length=3)
    csv_mapping = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("bank-account-edit", args=[self.pk])


class BankStatementSource(models.TextChoices):
    """The file format a statement was read from."""

    CSV = "csv", "CSV"
    CAMT053 = "camt053", "CAMT.053"


class BankStatementStatus(models.TextChoices):
    """A statement is parsed and stored whole at upload (a bad file stores nothing), then its lines
    are matched in bounded batches (on a worker for large files) until none is left: done."""

    MATCHING = "matching", "Matching"
    DONE = "done", "Done"


class BankStatement(models.Model):
    """One imported statement file. The file's SHA-256 is unique per account: the same file
    imported twice creates nothing new."""

    account = models.ForeignKey(BankAccount, on_delete=models.PROTECT, related_name="statements")
    source = models.CharField(max_length=10, choices=BankStatementSource.choices)
    filename = models.CharField(max_length=255)
    file_sha256 = models.CharField(max_length=64)
    statement_ref = models.CharField(max_length=100, blank=True, help_text="The bank's statement id (CAMT Stmt/Id).")
    status = models.CharField(max_length=10, choices=BankStatementStatus.choices, default=BankStatementStatus.MATCHING)
    total_lines = models.PositiveIntegerField(default=0)
    processed_lines = models.PositiveIntegerField(default=0)
    duplicate_lines = models.PositiveIntegerField(
        default=0, help_text="Entries of the file already imported with an earlier statement: not stored again."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "file_sha256"], name="bankstatement_file_once_per_account"),
            models.CheckConstraint(
                condition=Q(processed_lines__lte=F("total_lines")), name="bankstatement_progress_within_total"
            ),
        ]

    def __str__(self):
        return f"Statement #{self.pk} {self.filename}"

    def get_absolute_url(self):
        return reverse("bank-statement-detail", args=[self.pk])

    @property
    def progress_percent(self) -> int:
        return 100 if not self.total_lines else round(100 * self.processed_lines / self.total_lines)


class BankLineStatus(models.TextChoices):
    """New lines wait for matching. Matched lines posted a payment; suggested and unmatched lines
    wait in the queue for a person, who matches or ignores them. Debits are ignored at import."""

    NEW = "new", "New"
    MATCHED = "matched", "Matched"
    SUGGESTED = "suggested", "Suggested"
    UNMATCHED = "unmatched", "Unmatched"
    IGNORED = "ignored", "Ignored"


QUEUE_STATUSES = (BankLineStatus.SUGGESTED, BankLineStatus.UNMATCHED)


class BankLine(models.Model):
    """One booked entry of a statement. `entry_ref` (the bank's entry reference, or a digest of the
    entry when the bank gives none) is unique per account, so an entry in two overlapping files is
    stored once; `payment` is one-to-one, so a line posts one payment at most."""

    # No single-column indexes on account and statement: the unique constraints below lead with
    # them, and every index costs on the 10,000-row inserts and updates of an import.
    account = models.ForeignKey(BankAccount, on_delete=models.PROTECT, related_name="+", db_index=False)
    statement = models.ForeignKey(BankStatement, on_delete=models.CASCADE, related_name="lines", db_index=False)
    line_no = models.PositiveIntegerField()
    entry_ref = models.CharField(max_length=100)
    booking_date = models.DateField()
    is_credit = models.BooleanField(default=True)
    amount = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3)
    counterparty_name = models.CharField(max_length=140, blank=True)
    counterparty_iban = models.CharField(max_length=34, blank=True)
    remittance = models.TextField(blank=True)
    structured_ref = models.CharField(max_length=100, blank=True)
    end_to_end_id = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=10, choices=BankLineStatus.choices, default=BankLineStatus.NEW)
    reason = models.CharField(max_length=500, blank=True, help_text="Why it was matched, suggested or left.")
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="+", help_text="Recognised payer."
    )
    suggested_invoice_ids = models.JSONField(default=list, blank=True)
    payment = models.OneToOneField(Payment, null=True, blank=True, on_delete=models.PROTECT, related_name="bank_line")
    matched_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    matched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["statement", "line_no"]
        constraints = [
            models.UniqueConstraint(fields=["statement", "line_no"], name="bankline_line_no_unique"),
            models.UniqueConstraint(fields=["account", "entry_ref"], name="bankline_entry_once_per_account"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="bankline_amount_positive"),
            models.CheckConstraint(
                condition=Q(status=BankLineStatus.MATCHED, payment__isnull=False)
                | (~Q(status=BankLineStatus.MATCHED) & Q(payment__isnull=True)),
                name="bankline_matched_iff_payment",
            ),
            models.CheckConstraint(
                condition=Q(is_credit=True) | Q(status=BankLineStatus.IGNORED), name="bankline_debit_is_ignored"
            ),
        ]
        indexes = [models.Index(fields=["status", "statement"])]

    def __str__(self):
        return f"{self.statement_id}/{self.line_no} {self.amount} {self.currency}"


# --- Dunning -------------------------------------------------------------------------------------


class DunningTone(models.TextChoices):
    """How firmly a reminder speaks; a consolidated reminder takes the tone of its highest level."""

    FRIENDLY = "friendly", "Friendly"
    FIRM = "firm", "Firm"
    FINAL = "final", "Final notice"


def _template_errors(source: str) -> str | None:
    from django.template import Context, Template, TemplateSyntaxError

    try:
        Template(source).render(Context({}))
    except TemplateSyntaxError as exc:
        return str(exc)
    except Exception as exc:  # a filter that fails on a missing value: still a broken template
        return f"{type(exc).__name__}: {exc}"
    return None


class DunningLevel(models.Model):
    """A reminder step: sent once an invoice is `days_overdue` days past due, once per invoice.
    Subject and body are Django template strings rendered with the customer, the invoices listed
    (each with its level), the total overdue and the seller."""

    name = models.CharField(max_length=60)
    days_overdue = models.PositiveIntegerField(unique=True, help_text="Sent when an invoice is this many days late.")
    tone = models.CharField(max_length=10, choices=DunningTone.choices, default=DunningTone.FRIENDLY)
    subject_template = models.CharField(
        max_length=255, help_text="Django template, e.g. Reminder: {{ overdue_total }} {{ currency }} overdue."
    )
    body_template = models.TextField(
        help_text="Django template (plain text). Variables: customer, seller, as_of, invoices (number, due_date, "
        "days_overdue, balance, level_name, new, fee), invoice_count, invoice_table, overdue_total, fee_total, "
        "currency, level."
    )
    fee = models.DecimalField(
        **MONEY,
        default=Decimal("0"),
        help_text="Charged once per invoice at this level as a late-payment penalty invoice, within the penalty cap.",
    )
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["days_overdue"]
        constraints = [
            models.CheckConstraint(condition=Q(days_overdue__gte=1), name="dunninglevel_days_positive"),
            models.CheckConstraint(condition=Q(fee__gte=0), name="dunninglevel_fee_nonneg"),
        ]

    def __str__(self):
        return f"{self.name} ({self.days_overdue} days)"

    def save(self, *args, **kwargs):
        self.clean()  # a broken template is refused everywhere, not only in forms
        super().save(*args, **kwargs)

    def clean(self):
        from django.core.exceptions import ValidationError

        errors = {}
        for field in ("subject_template", "body_template"):
            if (problem := _template_errors(getattr(self, field) or "")) is not None:
                errors[field] = [f"The template does not render: {problem}"]
        if errors:
            raise ValidationError(errors)


class DunningChannel(models.TextChoices):
    """How the reminder reaches the customer: by its billing method."""

    EMAIL = "email", "E-mail"
    PRINT = "print", "Post (print batch)"


class DunningNoticeStatus(models.TextChoices):
    """pending (written, not yet out) -> sent (e-mailed) or queued_for_print; failed after a mail error."""

    PENDING = "pending", "Pending"
    SENT = "sent", "E-mailed"
    QUEUED_FOR_PRINT = "queued_for_print", "Queued for print"
    FAILED = "failed", "Sending failed"


class DunningNotice(models.Model):
    """One consolidated reminder to a customer: every overdue invoice at its level (DunningItem)."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="dunning_notices")
    as_of = models.DateField()
    level = models.ForeignKey(
        DunningLevel, on_delete=models.PROTECT, related_name="+", help_text="The highest level listed: its tone."
    )
    tone = models.CharField(max_length=10, choices=DunningTone.choices)
    channel = models.CharField(max_length=10, choices=DunningChannel.choices)
    status = models.CharField(max_length=20, choices=DunningNoticeStatus.choices, default=DunningNoticeStatus.PENDING)
    currency = models.CharField(max_length=3)
    overdue_total = models.DecimalField(**MONEY)
    fee_total = models.DecimalField(**MONEY, default=Decimal("0"))
    subject = models.CharField(max_length=255)
    body = models.TextField()
    recipients = models.JSONField(default=list, blank=True)
    print_batch_item = models.OneToOneField(
        "invoicing.PrintBatchItem", null=True, blank=True, on_delete=models.PROTECT, related_name="dunning_notice"
    )
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-as_of", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(overdue_total__gte=0) & Q(fee_total__gte=0), name="dunningnotice_amounts_nonneg"
            ),
        ]
        indexes = [models.Index(fields=["customer", "-as_of"])]

    def __str__(self):
        return f"Reminder #{self.pk} to {self.customer} ({self.get_tone_display().lower()}, {self.as_of})"


class DunningItem(models.Model):
    """An invoice listed in a reminder at a level. Unique per invoice and level: each level is sent
    once per invoice, however many runs or workers try."""

    notice = models.ForeignKey(DunningNotice, on_delete=models.PROTECT, related_name="items")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="dunning_items")
    level = models.ForeignKey(DunningLevel, on_delete=models.PROTECT, related_name="items")
    days_overdue = models.PositiveIntegerField()
    balance = models.DecimalField(**MONEY)
    fee = models.DecimalField(**MONEY, default=Decimal("0"))
    fee_invoice = models.OneToOneField(
        Invoice, null=True, blank=True, on_delete=models.PROTECT, related_name="dunning_fee_item"
    )

    class Meta:
        ordering = ["notice", "invoice__due_date", "invoice_id"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "level"], name="dunningitem_once_per_invoice_and_level"),
            models.CheckConstraint(condition=Q(balance__gt=0) & Q(fee__gte=0), name="dunningitem_amounts_valid"),
        ]

    def __str__(self):
        return f"{self.invoice} at {self.level}"


# --- Refunds and gateway webhooks ----------------------------------------------------------------


class Refund(models.Model):
    """Customer credit paid back out of a payment. `Payment.refunded_amount` is the sum of its
    refunds; allocations plus refunds never exceed the payment (its check constraint)."""

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    amount = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3)
    method = models.CharField(max_length=30, choices=PaymentMethod.choices)
    reference = models.CharField(max_length=140, blank=True, help_text="Bank or gateway reference of the refund.")
    reason = models.CharField(max_length=255)
    refunded_on = models.DateField()
    source = models.CharField(max_length=20, choices=PaymentSource.choices, default=PaymentSource.UI)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_positive")]

    def __str__(self):
        return f"Refund of {self.amount} {self.currency} on {self.payment}"


class WebhookEventType(models.TextChoices):
    """The gateway events the webhook understands."""

    PAYMENT_SUCCEEDED = "payment.succeeded", "Payment succeeded"
    PAYMENT_FAILED = "payment.failed", "Payment failed"
    REFUND_SUCCEEDED = "refund.succeeded", "Refund succeeded"


class WebhookOutcome(models.TextChoices):
    """What a stored gateway event did: posted a payment or a refund, only noted (a failed
    payment), or could not be posted and waits for a person (the detail says why)."""

    PAYMENT_RECORDED = "payment_recorded", "Payment recorded"
    REFUND_RECORDED = "refund_recorded", "Refund recorded"
    NOTED = "noted", "Noted, nothing posted"
    NEEDS_REVIEW = "needs_review", "Needs review"


class WebhookEvent(models.Model):
    """One signed gateway notification. Unique per provider and event id: a repeat does nothing."""

    provider = models.CharField(max_length=30)
    event_id = models.CharField(max_length=100)
    type = models.CharField(max_length=30, choices=WebhookEventType.choices)
    gateway_payment_id = models.CharField(
        max_length=100, help_text="The provider's id of the payment (a refund event names the payment it refunds)."
    )
    payload = models.JSONField(encoder=DjangoJSONEncoder)
    received_at = models.DateTimeField(auto_now_add=True)
    outcome = models.CharField(max_length=20, choices=WebhookOutcome.choices)
    detail = models.CharField(max_length=255, blank=True)
    payment = models.ForeignKey(Payment, null=True, blank=True, on_delete=models.PROTECT, related_name="webhook_events")
    refund = models.OneToOneField(Refund, null=True, blank=True, on_delete=models.PROTECT, related_name="webhook_event")

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "event_id"], name="webhookevent_once_per_provider_event"),
            # Two events about one gateway payment (a provider resending under a new event id) post it once.
            models.UniqueConstraint(
                fields=["provider", "gateway_payment_id"],
                condition=Q(outcome="payment_recorded"),
                name="webhookevent_gateway_payment_recorded_once",
            ),
        ]
        indexes = [models.Index(fields=["provider", "gateway_payment_id"])]

    def __str__(self):
        return f"{self.provider} {self.event_id} ({self.type})"
