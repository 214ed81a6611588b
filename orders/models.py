from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Round
from django.urls import reverse

from billing.models import MONEY, PERCENT, Customer, TaxRate

QUANTITY = {"max_digits": 14, "decimal_places": 3}


class Product(models.Model):
    sku = models.CharField("SKU", max_length=40, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    unit = models.CharField(max_length=20, default="unit", help_text="e.g. unit, hour, kg")
    unit_price = models.DecimalField(**MONEY, validators=[MinValueValidator(0)])
    tax_rate = models.ForeignKey(TaxRate, on_delete=models.PROTECT, related_name="products")
    active = models.BooleanField(default=True, help_text="Inactive products cannot be ordered.")

    class Meta:
        ordering = ["sku"]
        constraints = [models.CheckConstraint(condition=Q(unit_price__gte=0), name="product_price_nonneg")]

    def __str__(self):
        return f"{self.sku} {self.name}"


class OrderStatus(models.TextChoices):
    """draft -> confirmed -> fulfilled -> invoiced -> closed; cancelled from draft or confirmed."""

    DRAFT = "draft", "Draft"
    CONFIRMED = "confirmed", "Confirmed"
    FULFILLED = "fulfilled", "Fulfilled"
    INVOICED = "invoiced", "Invoiced"
    CLOSED = "closed", "Closed"
    CANCELLED = "cancelled", "Cancelled"


ORDER_TRANSITIONS: dict[str, set[str]] = {
    OrderStatus.DRAFT: {OrderStatus.CONFIRMED, OrderStatus.CANCELLED},
    OrderStatus.CONFIRMED: {OrderStatus.FULFILLED, OrderStatus.CANCELLED},
    OrderStatus.FULFILLED: {OrderStatus.INVOICED},
    OrderStatus.INVOICED: {OrderStatus.CLOSED, OrderStatus.FULFILLED},
    # A reversed payment (bounced check, chargeback) reopens the invoice, and so the order.
    OrderStatus.CLOSED: {OrderStatus.INVOICED},
    OrderStatus.CANCELLED: set(),
}


class OrderChannel(models.TextChoices):
    """Where an order was entered; feeds the order-entry-speed KPI."""

    UI = "ui", "Browser"
    API = "api", "API"
    IMPORT = "import", "Import"


class Order(models.Model):
    number = models.CharField(max_length=30, unique=True, blank=True)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="orders")
    customer_reference = models.CharField(max_length=80, blank=True, help_text="The customer's purchase order number.")
    order_date = models.DateField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=20, choices=OrderStatus.choices, default=OrderStatus.DRAFT, db_index=True)
    net_total = models.DecimalField(**MONEY, default=Decimal("0"))
    tax_total = models.DecimalField(**MONEY, default=Decimal("0"))
    gross_total = models.DecimalField(**MONEY, default=Decimal("0"))
    channel = models.CharField(max_length=10, choices=OrderChannel.choices, default=OrderChannel.UI)
    entry_started_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    fulfilled_at = models.DateTimeField(null=True, blank=True)
    notes = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-order_date", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(net_total__gte=0) & Q(tax_total__gte=0), name="order_totals_nonneg"),
            models.CheckConstraint(
                condition=Q(gross_total=Round(models.F("net_total") + models.F("tax_total"), 2)),
                name="order_gross_is_net_plus_tax",
            ),
        ]
        indexes = [models.Index(fields=["customer", "status"])]
        permissions = [
            ("override_line_price", "May override a line's unit price"),
            ("override_credit_limit", "May confirm an order over the credit limit, with a reason"),
        ]

    def __str__(self):
        return self.number or f"Order #{self.pk}"

    def get_absolute_url(self):
        return reverse("order-detail", args=[self.pk])


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField(default=1)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="order_lines")
    description = models.CharField(max_length=500)
    quantity = models.DecimalField(**QUANTITY, validators=[MinValueValidator(Decimal("0.001"))])
    unit = models.CharField(max_length=20, default="unit")
    unit_price = models.DecimalField(**MONEY, validators=[MinValueValidator(0)])
    discount_percent = models.DecimalField(**PERCENT, default=Decimal("0"))
    tax_rate = models.ForeignKey(TaxRate, on_delete=models.PROTECT, related_name="+")
    tax_percent = models.DecimalField(max_digits=5, decimal_places=2, help_text="The rate copied at entry.")
    tax_category = models.CharField(max_length=20)
    net_amount = models.DecimalField(**MONEY)

    class Meta:
        ordering = ["order", "position", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="orderline_quantity_positive"),
            models.CheckConstraint(condition=Q(unit_price__gte=0), name="orderline_price_nonneg"),
            models.CheckConstraint(
                condition=Q(discount_percent__gte=0) & Q(discount_percent__lte=100), name="orderline_discount_0_100"
            ),
            models.CheckConstraint(condition=Q(net_amount__gte=0), name="orderline_net_nonneg"),
        ]

    def __str__(self):
        return f"{self.order} #{self.position} {self.description}"


class OrderEvent(models.Model):
    """One row per status transition: who moved the order, when, from and to."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events")
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self):
        return f"{self.order}: {self.from_status or '-'} -> {self.to_status}"


class OrderImportStatus(models.TextChoices):
    """preview (checked, nothing saved) -> running (orders being created in chunks) -> done."""

    PREVIEW = "preview", "Preview"
    RUNNING = "running", "Importing"
    DONE = "done", "Done"


class OrderImport(models.Model):
    """A CSV of orders uploaded in the browser: parsed and checked once, kept here between the preview
    and the import (never in the browser, where it could be changed), then imported in chunks whose
    progress commits together with the orders they create."""

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    filename = models.CharField(max_length=255)
    status = models.CharField(max_length=10, choices=OrderImportStatus.choices, default=OrderImportStatus.PREVIEW)
    # {"orders": [...], "issues": [...]}: see orders.imports.parse_orders_csv.
    payload = models.JSONField(default=dict)
    row_count = models.PositiveIntegerField(default=0)
    order_count = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    warning_count = models.PositiveIntegerField(default=0)
    importable_count = models.PositiveIntegerField(default=0, help_text="Orders without errors.")
    processed_count = models.PositiveIntegerField(default=0, help_text="Importable orders handled so far.")
    created_count = models.PositiveIntegerField(default=0)
    failed_count = models.PositiveIntegerField(default=0)
    results = models.JSONField(default=list, blank=True, help_text="One entry per handled order.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(processed_count__lte=models.F("importable_count")), name="orderimport_processed_le_total"
            ),
            models.CheckConstraint(
                condition=Q(processed_count=models.F("created_count") + models.F("failed_count")),
                name="orderimport_processed_is_created_plus_failed",
            ),
        ]

    def __str__(self):
        return f"Import {self.pk} ({self.filename})"

    def get_absolute_url(self):
        return reverse("order-import-detail", args=[self.pk])
