from decimal import Decimal

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse

from . import terms as terms_math

MONEY = {"max_digits": 14, "decimal_places": 2}
PERCENT = {"max_digits": 5, "decimal_places": 2, "validators": [MinValueValidator(0), MaxValueValidator(100)]}


class PaymentMethod(models.TextChoices):
    """The payment methods OTC knows; payment terms list which of them a customer may use."""

    CARD = "card", "Card"
    BANK_TRANSFER = "bank_transfer", "Bank transfer"
    SEPA_DIRECT_DEBIT = "sepa_direct_debit", "SEPA direct debit"
    ACH = "ach", "ACH"
    WIRE = "wire", "Wire"
    CHECK = "check", "Check"
    CASH = "cash", "Cash"


def all_methods() -> list[str]:
    return list(PaymentMethod.values)


class TaxCategory(models.TextChoices):
    """EN 16931 VAT categories a tax rate may belong to."""

    STANDARD = "standard", "Standard"
    REDUCED = "reduced", "Reduced"
    ZERO = "zero", "Zero rated"
    EXEMPT = "exempt", "Exempt"
    REVERSE_CHARGE = "reverse_charge", "Reverse charge"


class TaxRate(models.Model):
    name = models.CharField(max_length=80, unique=True)
    rate = models.DecimalField(**PERCENT, help_text="Percent: 20.00 means 20 %.")
    category = models.CharField(max_length=20, choices=TaxCategory.choices, default=TaxCategory.STANDARD)
    legal_note = models.CharField(
        max_length=255,
        blank=True,
        help_text="Printed on invoices for exempt or reverse-charge lines (e.g. 'Reverse charge, Art. 196').",
    )
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["-rate", "name"]
        constraints = [
            models.CheckConstraint(condition=Q(rate__gte=0) & Q(rate__lte=100), name="taxrate_rate_0_100"),
            models.CheckConstraint(
                condition=~Q(category__in=["exempt", "reverse_charge", "zero"]) | Q(rate=0),
                name="taxrate_zero_categories_have_no_rate",
            ),
        ]

    def __str__(self):
        return f"{self.name} ({self.rate}%)"


class PaymentCycle(models.TextChoices):
    """How the customer pays: invoice by invoice, or in one run per week or month."""

    PER_INVOICE = "per_invoice", "Per invoice"
    WEEKLY = "weekly", "Weekly payment run"
    MONTHLY = "monthly", "Monthly payment run"


class PaymentTerms(models.Model):
    name = models.CharField(max_length=80, unique=True)
    due_days = models.PositiveIntegerField(help_text="Days from the issue date until payment is due.")
    end_of_month = models.BooleanField(default=False, help_text="Due at the end of the month the due days reach.")
    discount_percent = models.DecimalField(**PERCENT, default=Decimal("0"))
    discount_days = models.PositiveIntegerField(default=0)
    payment_cycle = models.CharField(max_length=20, choices=PaymentCycle.choices, default=PaymentCycle.PER_INVOICE)
    accepted_methods = models.JSONField(default=all_methods, help_text="Payment method codes the customer may use.")
    grace_days = models.PositiveIntegerField(default=0, help_text="Days after the due date before penalties apply.")
    annual_interest_rate = models.DecimalField(
        **PERCENT, default=Decimal("0"), help_text="Simple interest, actual/365."
    )
    fixed_fee = models.DecimalField(**MONEY, default=Decimal("0"), help_text="Charged once per overdue invoice.")
    penalty_cap_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text="Total penalties never exceed this percent of the invoice. Empty means uncapped.",
    )

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "payment terms"
        constraints = [
            models.CheckConstraint(
                condition=Q(discount_percent__gte=0) & Q(discount_percent__lte=100), name="terms_discount_0_100"
            ),
            models.CheckConstraint(condition=Q(annual_interest_rate__gte=0), name="terms_interest_nonneg"),
            models.CheckConstraint(condition=Q(fixed_fee__gte=0), name="terms_fee_nonneg"),
            models.CheckConstraint(
                condition=Q(penalty_cap_percent__isnull=True)
                | (Q(penalty_cap_percent__gte=0) & Q(penalty_cap_percent__lte=100)),
                name="terms_cap_0_100",
            ),
        ]

    def __str__(self):
        return self.name

    def text(self, currency: str = "") -> str:
        return terms_math.terms_text(
            due_days=self.due_days,
            end_of_month=self.end_of_month,
            discount_percent=self.discount_percent,
            discount_days=self.discount_days,
            accepted_methods=self.accepted_methods,
            grace_days=self.grace_days,
            annual_interest_rate=self.annual_interest_rate,
            fixed_fee=self.fixed_fee,
            penalty_cap_percent=self.penalty_cap_percent,
            currency=currency,
        )

    def snapshot(self, currency: str = "") -> dict:
        """The terms as frozen onto an invoice at issue."""
        return {
            "name": self.name,
            "due_days": self.due_days,
            "end_of_month": self.end_of_month,
            "discount_percent": str(self.discount_percent),
            "discount_days": self.discount_days,
            "payment_cycle": self.payment_cycle,
            "accepted_methods": list(self.accepted_methods),
            "grace_days": self.grace_days,
            "annual_interest_rate": str(self.annual_interest_rate),
            "fixed_fee": str(self.fixed_fee),
            "penalty_cap_percent": None if self.penalty_cap_percent is None else str(self.penalty_cap_percent),
            "text": self.text(currency),
        }


class BillingMethod(models.TextChoices):
    """How invoices reach the customer."""

    ELECTRONIC = "electronic", "Electronic (e-mail, PDF + e-invoice)"
    PAPER = "paper", "Paper (printed and posted)"


class BillingCycle(models.TextChoices):
    """How often the customer is invoiced."""

    PER_ORDER = "per_order", "Per order"
    WEEKLY = "weekly", "Weekly"
    MONTHLY = "monthly", "Monthly"


class Customer(models.Model):
    code = models.CharField(max_length=30, unique=True, blank=True, help_text="Left empty, one is assigned.")
    name = models.CharField(max_length=200)
    legal_name = models.CharField(max_length=200, blank=True)
    tax_id = models.CharField(max_length=40, blank=True, help_text="VAT number or other tax identifier.")
    email = models.EmailField(help_text="Billing e-mail: invoices are sent here.")
    phone = models.CharField(max_length=40, blank=True)
    currency = models.CharField(max_length=3, default="EUR")
    payment_terms = models.ForeignKey(PaymentTerms, on_delete=models.PROTECT, related_name="customers")
    billing_method = models.CharField(max_length=20, choices=BillingMethod.choices, default=BillingMethod.ELECTRONIC)
    billing_cycle = models.CharField(max_length=20, choices=BillingCycle.choices, default=BillingCycle.PER_ORDER)
    credit_limit = models.DecimalField(**MONEY, null=True, blank=True, help_text="Empty means unlimited.")
    on_hold = models.BooleanField(default=False)
    on_hold_reason = models.CharField(max_length=255, blank=True)
    billing_line1 = models.CharField("address line 1", max_length=200, blank=True)
    billing_line2 = models.CharField("address line 2", max_length=200, blank=True)
    billing_city = models.CharField("city", max_length=100, blank=True)
    billing_postal_code = models.CharField("postal code", max_length=20, blank=True)
    billing_region = models.CharField("region", max_length=100, blank=True)
    billing_country = models.CharField("country", max_length=2, blank=True, help_text="ISO 3166 code, e.g. FR.")
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(credit_limit__isnull=True) | Q(credit_limit__gte=0), name="customer_credit_limit_nonneg"
            ),
            models.CheckConstraint(condition=~Q(on_hold=True, on_hold_reason=""), name="customer_hold_has_reason"),
        ]
        indexes = [models.Index(fields=["email"])]

    def __str__(self):
        return f"{self.name} ({self.code})" if self.code else self.name

    def get_absolute_url(self):
        return reverse("customer-detail", args=[self.pk])

    @property
    def billing_address_lines(self) -> list[str]:
        city = " ".join(p for p in [self.billing_postal_code, self.billing_city] if p)
        return [
            p for p in [self.billing_line1, self.billing_line2, city, self.billing_region, self.billing_country] if p
        ]

    def snapshot(self) -> dict:
        """The customer's details as frozen onto an invoice at issue."""
        return {
            "code": self.code,
            "name": self.name,
            "legal_name": self.legal_name or self.name,
            "tax_id": self.tax_id,
            "email": self.email,
            "phone": self.phone,
            "address": {
                "line1": self.billing_line1,
                "line2": self.billing_line2,
                "city": self.billing_city,
                "postal_code": self.billing_postal_code,
                "region": self.billing_region,
                "country": self.billing_country,
            },
            "address_lines": self.billing_address_lines,
            "contacts": [
                {"name": c.name, "email": c.email, "phone": c.phone, "role": c.role} for c in self.contacts.all()
            ],
            "billing_method": self.billing_method,
        }


class Contact(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="contacts")
    name = models.CharField(max_length=120)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=40, blank=True)
    role = models.CharField(max_length=80, blank=True, help_text="e.g. Accounts payable")
    receives_invoices = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class AuditEvent(models.Model):
    """Who changed what, when. Written by services for every state change."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=80)
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.PositiveBigIntegerField()
    target = GenericForeignKey("content_type", "object_id")
    object_repr = models.CharField(max_length=200)
    changes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["content_type", "object_id"])]

    def __str__(self):
        return f"{self.action} {self.object_repr}"
