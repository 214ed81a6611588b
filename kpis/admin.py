from django.contrib import admin

from billing.admin_base import ReadOnlyAdmin

from .models import Feedback, KpiSnapshot


@admin.register(Feedback)
class FeedbackAdmin(ReadOnlyAdmin):
    """Customer ratings, from the signed link or recorded by staff from a call (on the customer's
    page)."""

    list_display = ["invoice", "customer", "rating", "source", "created_by", "created_at"]
    list_filter = ["rating", "source"]
    search_fields = ["invoice__number", "customer__name", "comment"]
    list_select_related = ["invoice", "customer", "created_by"]
    date_hierarchy = "created_at"


@admin.register(KpiSnapshot)
class KpiSnapshotAdmin(ReadOnlyAdmin):
    """The nightly figures behind the dashboard's trends; recompute a range with `manage.py
    kpi_backfill`."""

    list_display = ["date", "key", "currency", "customer", "value", "computed_at"]
    list_filter = ["key", "currency"]
    search_fields = ["key", "customer__name"]
    list_select_related = ["customer"]
    date_hierarchy = "date"
