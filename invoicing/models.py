import hashlib
import json
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Round
from django.urls import reverse

from billing.models import MONEY, Customer, RunBatch
from billing.money import HUNDRED, quantize
from orders.models import QUANTITY, OrderLine


class InvoiceKind(models.TextChoices):
    """What the document is: a sale, a correction of one, or a late-payment charge."""

    INVOICE = "invoice", "Invoice"
    CREDIT_NOTE = "credit_note", "Credit note"
    PENALTY = "penalty", "Late-payment penalty"


SERIES_BY_KIND = {InvoiceKind.INVOICE: "INV", InvoiceKind.CREDIT_NOTE: "CN", InvoiceKind.PENALTY: "PEN"}


class InvoiceStatus(models.TextChoices):
    """draft -> issued -> partially_paid -> paid, or void. Paid states derive from allocations."""

    DRAFT = "draft", "Draft"
    ISSUED = "issued", "Issued"
    PARTIALLY_PAID = "partially_paid", "Partially paid"
    PAID = "paid", "Paid"
    VOID = "void", "Void"


OPEN_STATUSES = (InvoiceStatus.ISSUED, InvoiceStatus.PARTIALLY_PAID)


class PdfStatus(models.TextChoices):
    """Where the rendering worker is with an invoice's PDF."""

    NONE = "none", "Not requested"
    PENDING = "pending", "Rendering"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class DeliveryStatus(models.TextChoices):
    """How far an issued invoice is on its way to the customer: e-mailed (electronic customers:
    pending -> sent, or failed after the last retry) or printed and posted (paper customers:
    queued_for_print in a print batch -> posted)."""

    NONE = "none", "Not sent"
    PENDING = "pending", "Sending"
    SENT = "sent", "E-mailed"
    FAILED = "failed", "Sending failed"
    QUEUED_FOR_PRINT = "queued_for_print", "Queued for print"
    POSTED = "posted", "Posted"


class NumberSequence(models.Model):
    """The last number given per series and year; locked while a number is taken, so no gaps."""

    series = models.CharField(max_length=10)
    year = models.PositiveIntegerField()
    last_number = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["series", "year"], name="numbersequence_series_year_unique")]

    def __str__(self):
        return f"{self.series}-{self.year}: {self.last_number}"


# Fields that may change after issue; everything else is the frozen document.
# Content fields that came after documents had been issued: they count in the fingerprint only when
# set, so that the fingerprints stored on documents issued before them stay valid.
ADDED_AFTER_ISSUE = frozenset({"credit_reason"})
MUTABLE_AFTER_ISSUE = {
    "status",
    "amount_paid",
    "pdf",
    "pdf_status",
    "pdf_sha256",
    "pdf_error",
    "pdf_attempts",
    "pdf_rendered_at",
    "voided_at",
    "void_reason",
    "updated_at",
    # Delivery moves on after issue; the document itself does not.
    "delivery_status",
    "delivered_at",
    "delivery_error",
    "delivery_attempts",
    # A dispute is about collecting the invoice, not its content.
    "disputed",
    "dispute_reason",
    "disputed_at",
}


class Invoice(models.Model):
    kind = models.CharField(max_length=20, choices=InvoiceKind.choices, default=InvoiceKind.INVOICE)
    series = models.CharField(max_length=10, default="INV")
    number = models.CharField(max_length=30, unique=True, null=True, blank=True)
    sequence_year = models.PositiveIntegerField(null=True, blank=True)
    sequence_number = models.PositiveIntegerField(null=True, blank=True)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices")
    status = models.CharField(max_length=20, choices=InvoiceStatus.choices, default=InvoiceStatus.DRAFT, db_index=True)
    issue_date = models.DateField(null=True, blank=True)
    due_date = models.DateField(null=True, blank=True, db_index=True)
    currency = models.CharField(max_length=3)
    net_total = models.DecimalField(**MONEY, default=Decimal("0"))
    tax_total = models.DecimalField(**MONEY, default=Decimal("0"))
    gross_total = models.DecimalField(**MONEY, default=Decimal("0"))
    amount_paid = models.DecimalField(**MONEY, default=Decimal("0"))
    customer_snapshot = models.JSONField(default=dict, blank=True)
    terms_snapshot = models.JSONField(default=dict, blank=True)
    seller_snapshot = models.JSONField(default=dict, blank=True)
    tax_breakdown = models.JSONField(default=list, blank=True)
    content_sha256 = models.CharField(max_length=64, blank=True, help_text="Fingerprint of the content at issue.")
    original = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="corrections")
    pdf = models.FileField(upload_to="invoices/%Y/%m/", blank=True)
    pdf_status = models.CharField(max_length=10, choices=PdfStatus.choices, default=PdfStatus.NONE)
    pdf_sha256 = models.CharField(max_length=64, blank=True)
    pdf_error = models.TextField(blank=True)
    pdf_attempts = models.PositiveIntegerField(default=0)
    pdf_rendered_at = models.DateTimeField(null=True, blank=True)
    delivery_status = models.CharField(
        max_length=20, choices=DeliveryStatus.choices, default=DeliveryStatus.NONE, db_index=True
    )
    delivered_at = models.DateTimeField(null=True, blank=True, help_text="When it was e-mailed or posted.")
    delivery_error = models.TextField(blank=True)
    delivery_attempts = models.PositiveIntegerField(default=0, help_text="E-mail sending attempts.")
    issued_at = models.DateTimeField(null=True, blank=True)
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    voided_at = models.DateTimeField(null=True, blank=True)
    void_reason = models.CharField(max_length=255, blank=True)
    credit_reason = models.CharField(
        max_length=500,
        blank=True,
        default="",
        db_default="",  # set-based writers (bench loaders, hand-written SQL) may leave it out
        help_text="Why a credit note was issued: printed on it and sent in its e-invoice.",
    )
    disputed = models.BooleanField(default=False, help_text="The customer contests it: no reminders are sent.")
    dispute_reason = models.CharField(max_length=255, blank=True)
    disputed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-issue_date", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(net_total__gte=0) & Q(tax_total__gte=0), name="invoice_totals_nonneg"),
            models.CheckConstraint(
                condition=Q(gross_total=Round(F("net_total") + F("tax_total"), 2)), name="invoice_gross_is_net_plus_tax"
            ),
            models.CheckConstraint(
                condition=Q(amount_paid__gte=0) & Q(amount_paid__lte=F("gross_total")), name="invoice_paid_within_total"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["draft", "void"])
                | (Q(number__isnull=False) & Q(issue_date__isnull=False) & Q(due_date__isnull=False)),
                name="invoice_issued_has_number_and_dates",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=["draft", "void"]) | Q(amount_paid=0), name="invoice_unpaid_when_draft_or_void"
            ),
            models.UniqueConstraint(
                fields=["series", "sequence_year", "sequence_number"], name="invoice_sequence_unique"
            ),
            models.CheckConstraint(
                condition=~Q(kind="credit_note") | Q(original__isnull=False), name="invoice_credit_note_has_original"
            ),
            models.CheckConstraint(
                condition=Q(disputed=False) | (~Q(dispute_reason="") & Q(disputed_at__isnull=False)),
                name="invoice_dispute_has_reason",
            ),
        ]
        indexes = [models.Index(fields=["customer", "status"]), models.Index(fields=["status", "due_date"])]

    def __str__(self):
        return self.number or f"Draft {self.get_kind_display().lower()} #{self.pk}"

    def save(self, *args, **kwargs):
        self._guard_frozen(kwargs.get("update_fields"))
        super().save(*args, **kwargs)
        self._loaded, self._loaded_status = self._content(), self.status

    def get_absolute_url(self):
        return reverse("invoice-detail", args=[self.pk])

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        instance._loaded = instance._content()
        instance._loaded_status = instance.__dict__.get("status")
        return instance

    def _content(self) -> dict:
        return {
            f.attname: getattr(self, f.attname)
            for f in self._meta.concrete_fields
            if f.attname not in MUTABLE_AFTER_ISSUE and f.attname in self.__dict__
        }

    def _guard_frozen(self, update_fields) -> None:
        """An issued invoice never changes its content: corrections are credit notes."""
        loaded = getattr(self, "_loaded", None)
        if not self.pk or not loaded or getattr(self, "_loaded_status", None) in (None, InvoiceStatus.DRAFT):
            return
        if update_fields is not None and set(update_fields) <= MUTABLE_AFTER_ISSUE:
            return
        changed = [k for k, v in self._content().items() if k in loaded and loaded[k] != v]
        if changed:
            raise ValueError(f"Invoice {self.number} is issued; its content cannot change ({', '.join(changed)}).")

    @property
    def balance(self) -> Decimal:
        return self.gross_total - self.amount_paid

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def fingerprint(self, lines=None) -> str:
        """SHA-256 of the document's content: header fields and every line (as stored; pass
        `lines` read from the database to avoid a query per invoice)."""
        header = {
            k: v
            for k, v in self._content().items()
            if k not in {"content_sha256", "issued_by_id", "created_at"} and not (k in ADDED_AFTER_ISSUE and v == "")
        }
        lines = [
            {k: str(getattr(line, k)) for k in InvoiceLine.CONTENT_FIELDS}
            for line in (lines if lines is not None else self.lines.order_by("position", "id"))
        ]
        payload = json.dumps({"header": header, "lines": lines}, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()


class InvoiceLine(models.Model):
    CONTENT_FIELDS = (
        "position",
        "credited_line_id",
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
    )

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField(default=1)
    credited_line = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="credit_lines",
        help_text="On a credit note: the invoice line it credits.",
    )
    order_line = models.ForeignKey(
        OrderLine, null=True, blank=True, on_delete=models.PROTECT, related_name="invoice_lines"
    )
    order_number = models.CharField(max_length=30, blank=True)
    order_date = models.DateField(null=True, blank=True)
    customer_reference = models.CharField(max_length=80, blank=True)
    sku = models.CharField(max_length=40, blank=True)
    description = models.CharField(max_length=500)
    quantity = models.DecimalField(**QUANTITY)
    unit = models.CharField(max_length=20, default="unit")
    unit_price = models.DecimalField(**MONEY)
    discount_percent = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("0"))
    tax_percent = models.DecimalField(max_digits=5, decimal_places=2)
    tax_category = models.CharField(max_length=20, default="standard")
    tax_note = models.CharField(max_length=255, blank=True)
    net_amount = models.DecimalField(**MONEY)
    # Not content: set (with the invoice's status) when an issued invoice is voided, so that its
    # order lines can be invoiced again while the void document keeps its lines unchanged.
    voided = models.BooleanField(
        default=False, db_default=False, help_text="Its invoice was voided; the order line is free again."
    )

    class Meta:
        ordering = ["invoice", "position", "id"]
        constraints = [
            # One live invoice line per order line: an order line is never invoiced twice. A voided
            # invoice's lines stay (the document is frozen) but no longer hold their order line.
            models.UniqueConstraint(
                fields=["order_line"], condition=Q(voided=False), name="invoiceline_order_line_once"
            ),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="invoiceline_quantity_positive"),
            models.CheckConstraint(
                condition=Q(unit_price__gte=0) & Q(net_amount__gte=0), name="invoiceline_amounts_nonneg"
            ),
        ]

    def __str__(self):
        return f"{self.invoice} #{self.position}"

    def save(self, *args, **kwargs):
        if self.invoice.status != InvoiceStatus.DRAFT:
            raise ValueError(f"Invoice {self.invoice} is issued; its lines cannot change.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        if self.invoice.status != InvoiceStatus.DRAFT:
            raise ValueError(f"Invoice {self.invoice} is issued; its lines cannot change.")
        return super().delete(*args, **kwargs)

    @property
    def tax_amount(self):
        return quantize(self.net_amount * self.tax_percent / HUNDRED, self.invoice.currency)

    @property
    def gross_amount(self):
        return self.net_amount + self.tax_amount


class BillingRunStatus(models.TextChoices):
    """A billing run is planned, then its batches run on workers until every group is done."""

    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class BillingRun(models.Model):
    """One pass that turns fulfilled, uninvoiced orders into issued invoices, per billing cycle."""

    as_of = models.DateField(help_text="Bills orders fulfilled on or before this date.")
    status = models.CharField(max_length=10, choices=BillingRunStatus.choices, default=BillingRunStatus.RUNNING)
    total_groups = models.PositiveIntegerField(default=0, help_text="Invoices planned (one per order or period).")
    processed_groups = models.PositiveIntegerField(default=0)
    invoices_created = models.PositiveIntegerField(default=0)
    orders_billed = models.PositiveIntegerField(default=0)
    skipped_groups = models.PositiveIntegerField(default=0, help_text="Already billed by another run.")
    errors = models.JSONField(default=list, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(processed_groups__lte=F("total_groups")), name="billingrun_progress_within_total"
            ),
        ]

    def __str__(self):
        return f"Billing run #{self.pk} as of {self.as_of}"

    @property
    def progress_percent(self) -> int:
        return 100 if not self.total_groups else int(self.processed_groups * 100 / self.total_groups)


class BillingRunBatch(RunBatch):
    """A stored batch of a billing run: its `items` are groups of order ids, one invoice each."""

    run = models.ForeignKey(BillingRun, on_delete=models.CASCADE, related_name="batches")


class CreditApplication(models.Model):
    """Part of a credit note applied to an invoice's balance. With allocations of payments,
    these make up the invoice's amount paid."""

    credit_note = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_applications")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credits_received")
    amount = models.DecimalField(**MONEY)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="creditapplication_amount_positive"),
            models.CheckConstraint(condition=~Q(credit_note=F("invoice")), name="creditapplication_not_to_itself"),
        ]

    def __str__(self):
        return f"{self.credit_note} -> {self.invoice}: {self.amount}"


class PrintBatchStatus(models.TextChoices):
    """open (takes the day's paper invoices) -> closed (one merged PDF, ready to print) -> posted."""

    OPEN = "open", "Open"
    CLOSED = "closed", "Closed, ready to print"
    POSTED = "posted", "Posted"


class PrintBatch(models.Model):
    """The paper invoices of one day, printed as one merged PDF and posted together."""

    date = models.DateField()
    status = models.CharField(max_length=10, choices=PrintBatchStatus.choices, default=PrintBatchStatus.OPEN)
    pdf = models.FileField(upload_to="print-batches/%Y/%m/", blank=True)
    pdf_sha256 = models.CharField(max_length=64, blank=True)
    invoice_count = models.PositiveIntegerField(default=0)
    page_count = models.PositiveIntegerField(default=0, help_text="Pages of the merged PDF, blank backs included.")
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    posted_at = models.DateTimeField(null=True, blank=True)
    posted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-date", "-id"]
        verbose_name_plural = "print batches"
        constraints = [
            # One open batch per day, so concurrent paper deliveries all join the same one.
            models.UniqueConstraint(fields=["date"], condition=Q(status="open"), name="printbatch_one_open_per_date"),
            models.CheckConstraint(
                condition=Q(status="open", closed_at__isnull=True)
                | Q(status="closed", closed_at__isnull=False, posted_at__isnull=True)
                | Q(status="posted", closed_at__isnull=False, posted_at__isnull=False),
                name="printbatch_dates_follow_status",
            ),
        ]

    def __str__(self):
        return f"Print batch #{self.pk} of {self.date}"


class PrintBatchItem(models.Model):
    """A document in a print batch: an invoice (printed from its own PDF, in at most one batch) or
    another letter to post, such as a payment reminder, kept as its own PDF file. Higher apps add
    their letters through `delivery.print_batch_add_document` without invoicing knowing them."""

    batch = models.ForeignKey(PrintBatch, on_delete=models.PROTECT, related_name="items")
    invoice = models.ForeignKey(
        Invoice, null=True, blank=True, on_delete=models.PROTECT, related_name="print_batch_items"
    )
    document = models.FileField(upload_to="print-batches/documents/%Y/%m/", blank=True)
    title = models.CharField(max_length=200, blank=True, help_text="What the document is, for a document item.")
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="+", help_text="Addressee."
    )
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["batch", "id"]
        constraints = [
            models.UniqueConstraint(fields=["invoice"], name="printbatchitem_invoice_once"),
            models.CheckConstraint(
                condition=(Q(invoice__isnull=False) & Q(document=""))
                | (Q(invoice__isnull=True) & ~Q(document="") & Q(customer__isnull=False)),
                name="printbatchitem_invoice_or_document",
            ),
        ]

    def __str__(self):
        return f"{self.batch}: {self.invoice or self.title}"
