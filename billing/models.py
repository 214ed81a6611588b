from decimal import Decimal

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse

from . import terms as terms_math
from .validators import (
    normalize_code,
    normalize_iban,
    normalize_tax_id,
    validate_country_code,
    validate_currency_code,
)

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
    tax_id = models.CharField(
        max_length=40,
        blank=True,
        help_text="VAT number (EIN in the US), checked against the billing country and stored without spaces.",
    )
    email = models.EmailField("billing email", help_text="Invoices are sent here.")
    phone = models.CharField(max_length=40, blank=True)
    iban = models.CharField(
        "IBAN",
        max_length=34,
        blank=True,
        db_index=True,
        help_text="The account the customer pays from, without spaces; bank statement lines from it are theirs.",
    )
    currency = models.CharField(max_length=3, default="EUR", validators=[validate_currency_code])
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
    billing_country = models.CharField(
        "country", max_length=2, blank=True, validators=[validate_country_code], help_text="ISO 3166 code, e.g. FR."
    )
    shipping_same_as_billing = models.BooleanField("ship to the billing address", default=True)
    shipping_line1 = models.CharField("shipping line 1", max_length=200, blank=True)
    shipping_line2 = models.CharField("shipping line 2", max_length=200, blank=True)
    shipping_city = models.CharField("shipping city", max_length=100, blank=True)
    shipping_postal_code = models.CharField("shipping postal code", max_length=20, blank=True)
    shipping_region = models.CharField("shipping region", max_length=100, blank=True)
    shipping_country = models.CharField(
        "shipping country", max_length=2, blank=True, validators=[validate_country_code], help_text="ISO 3166 code."
    )
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Case-insensitive prefix search on code, name, tax id and e-mail is served on PostgreSQL by
    # expression indexes on UPPER(column) with text_pattern_ops (billing migration 0002): they are
    # PostgreSQL-only, so they live in the migration rather than here.
    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(credit_limit__isnull=True) | Q(credit_limit__gte=0), name="customer_credit_limit_nonneg"
            ),
            models.CheckConstraint(condition=~Q(on_hold=True, on_hold_reason=""), name="customer_hold_has_reason"),
            models.CheckConstraint(condition=Q(currency__regex=r"^[A-Z]{3}$"), name="customer_currency_iso_shape"),
            models.CheckConstraint(
                condition=Q(billing_country="") | Q(billing_country__regex=r"^[A-Z]{2}$"),
                name="customer_billing_country_iso_shape",
            ),
            models.CheckConstraint(
                condition=Q(shipping_country="") | Q(shipping_country__regex=r"^[A-Z]{2}$"),
                name="customer_shipping_country_iso_shape",
            ),
            # One source of truth: a customer shipping to the billing address keeps no second address.
            models.CheckConstraint(
                condition=Q(shipping_same_as_billing=False)
                | Q(
                    shipping_line1="",
                    shipping_line2="",
                    shipping_city="",
                    shipping_postal_code="",
                    shipping_region="",
                    shipping_country="",
                ),
                name="customer_shipping_blank_when_same",
            ),
            models.CheckConstraint(
                condition=Q(shipping_same_as_billing=True) | (~Q(shipping_line1="") & ~Q(shipping_city="")),
                name="customer_shipping_has_street_and_city",
            ),
        ]
        indexes = [models.Index(fields=["email"])]

    def __str__(self):
        return f"{self.name} ({self.code})" if self.code else self.name

    def get_absolute_url(self):
        return reverse("customer-detail", args=[self.pk])

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        instance._stored_tax_id = (instance.__dict__.get("tax_id"), instance.__dict__.get("billing_country"))
        return instance

    def clean_fields(self, exclude=None):
        # ISO codes are stored upper-case whatever the caller typed; the validators then see them so.
        for name in ("currency", "billing_country", "shipping_country"):
            setattr(self, name, normalize_code(getattr(self, name)))
        super().clean_fields(exclude=exclude)

    def clean(self):
        errors: dict[str, list[str]] = {}
        # A tax id is checked when it is entered or the country changes; one stored before the check
        # existed does not block an unrelated edit (putting the customer on hold, say).
        if (self.tax_id, self.billing_country) != getattr(self, "_stored_tax_id", None):
            try:
                self.tax_id = normalize_tax_id(self.tax_id, self.billing_country)
            except ValidationError as exc:
                errors["tax_id"] = exc.messages
        if self.iban:
            try:
                self.iban = normalize_iban(self.iban)
            except ValidationError as exc:
                errors["iban"] = exc.messages
        if self.on_hold and not (self.on_hold_reason or "").strip():
            errors["on_hold_reason"] = ["Say why the customer is on hold."]
        if self.shipping_same_as_billing:
            for name in SHIPPING_FIELDS:
                setattr(self, name, "")
        else:
            hint = "or deliver to the billing address."
            if not self.shipping_line1.strip():
                errors["shipping_line1"] = [f"Enter the street of the shipping address, {hint}"]
            if not self.shipping_city.strip():
                errors["shipping_city"] = [f"Enter the city of the shipping address, {hint}"]
        if errors:
            raise ValidationError(errors)

    @property
    def billing_address_lines(self) -> list[str]:
        return _address_lines(self, "billing")

    @property
    def shipping_address_lines(self) -> list[str]:
        """Where goods go: the billing address unless a shipping address is set."""
        return self.billing_address_lines if self.shipping_same_as_billing else _address_lines(self, "shipping")

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
            "shipping_address_lines": self.shipping_address_lines,
            "contacts": [
                {
                    "name": c.name,
                    "email": c.email,
                    "phone": c.phone,
                    "role": c.role,
                    "receives_invoices": c.receives_invoices,
                }
                for c in self.contacts.all()
            ],
            "billing_method": self.billing_method,
        }


SHIPPING_FIELDS = (
    "shipping_line1",
    "shipping_line2",
    "shipping_city",
    "shipping_postal_code",
    "shipping_region",
    "shipping_country",
)


def _address_lines(customer: Customer, prefix: str) -> list[str]:
    part = lambda name: getattr(customer, f"{prefix}_{name}")  # noqa: E731
    city = " ".join(p for p in [part("postal_code"), part("city")] if p)
    return [p for p in [part("line1"), part("line2"), city, part("region"), part("country")] if p]


class Contact(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="contacts")
    name = models.CharField(max_length=120)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=40, blank=True)
    role = models.CharField(max_length=80, blank=True, help_text="e.g. Accounts payable")
    receives_invoices = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            # Invoices and statements go to these contacts by e-mail: a recipient without one gets nothing.
            models.CheckConstraint(
                condition=Q(receives_invoices=False) | ~Q(email=""), name="contact_invoice_recipient_has_email"
            ),
        ]

    def __str__(self):
        return self.name

    def clean(self):
        if self.receives_invoices and not (self.email or "").strip():
            raise ValidationError({"email": "A contact who receives invoices needs an e-mail address."})


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


class RunBatch(models.Model):
    """One bounded batch of a background run's work (a billing run's order groups, a penalty run's
    invoices), stored until it is done: its message carries only its id, the sweeper sends it again
    when that message was lost (billing.jobs.batches_resend_lost), and its progress is counted once
    however many times a message for it arrives (billing.jobs.batch_mark_done)."""

    items = models.JSONField(help_text="What the batch works on: order-id groups, or invoice ids.")
    sent_at = models.DateTimeField(help_text="When its message was last sent to the workers.")
    sends = models.PositiveSmallIntegerField(default=1, help_text="Messages sent for it: more than one after a resend.")
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["id"]
        indexes = [models.Index(fields=["sent_at"], condition=Q(done_at__isnull=True), name="%(class)s_pending")]

    def __str__(self):
        return f"Batch #{self.pk} of {self._meta.get_field('run').related_model._meta.verbose_name} #{self.run_id}"
