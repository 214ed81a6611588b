from django.conf import settings
from django.db import models
from django.db.models import Q

from billing.models import Customer
from invoicing.models import Invoice


class FeedbackSource(models.TextChoices):
    """How the rating reached us: the customer's signed link, or staff noting it during a call."""

    LINK = "link", "Feedback link"
    CALL = "call", "Phone call"


class Feedback(models.Model):
    """A customer's satisfaction with one invoice: a 1-5 rating and a comment. One per invoice,
    whoever records it first (the link or a call); it feeds CSAT."""

    invoice = models.OneToOneField(Invoice, on_delete=models.PROTECT, related_name="feedback")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="feedback")
    rating = models.PositiveSmallIntegerField()
    comment = models.TextField(blank=True)
    source = models.CharField(max_length=10, choices=FeedbackSource.choices)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who recorded it; empty when the customer answered through the link.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "feedback"
        constraints = [
            models.CheckConstraint(condition=Q(rating__gte=1) & Q(rating__lte=5), name="feedback_rating_1_to_5"),
            models.CheckConstraint(condition=Q(source__in=["link", "call"]), name="feedback_source_known"),
        ]
        indexes = [models.Index(fields=["customer", "-created_at"]), models.Index(fields=["created_at"])]

    def __str__(self):
        return f"{self.invoice}: {self.rating}/5"


class KpiSnapshot(models.Model):
    """One KPI value for one day: the figure for the month to date ending that day (so the snapshot
    of a month's last day is the whole month). `currency` is blank for figures that are not money
    (order entry speed); `customer` is empty for the figure over all customers."""

    date = models.DateField()
    currency = models.CharField(max_length=3, blank=True)
    key = models.CharField(max_length=40)
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    value = models.DecimalField(max_digits=20, decimal_places=4, null=True, blank=True)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["date", "currency", "key"]
        constraints = [
            # One row per day, currency, key and customer, the overall figure (no customer) included:
            # a second nightly run or a backfill replaces the row instead of adding one.
            models.UniqueConstraint(
                fields=["date", "currency", "key"],
                condition=Q(customer__isnull=True),
                name="kpisnapshot_one_overall_per_day",
            ),
            models.UniqueConstraint(
                fields=["date", "currency", "key", "customer"],
                condition=Q(customer__isnull=False),
                name="kpisnapshot_one_per_customer_per_day",
            ),
        ]
        indexes = [models.Index(fields=["key", "currency", "date"], name="kpisnapshot_trend")]

    def __str__(self):
        return f"{self.date} {self.currency} {self.key} = {self.value}"
