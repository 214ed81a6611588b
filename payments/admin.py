from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from billing.errors import DomainError

from . import services
from .models import Allocation, Payment, Refund, WebhookEvent


class AllocationInline(admin.TabularInline):
    model = Allocation
    extra = 0
    can_delete = False
    readonly_fields = ["invoice", "amount", "discount", "reversed_at", "created_by", "created_at"]

    def has_add_permission(self, request, obj=None):
        return False


class RefundInline(admin.TabularInline):
    model = Refund
    extra = 0
    can_delete = False
    readonly_fields = ["amount", "currency", "method", "reference", "reason", "refunded_on", "source", "created_by"]

    def has_add_permission(self, request, obj=None):
        return False


class PaymentAddForm(forms.ModelForm):
    """Recording a payment in the admin goes through the same service as the UI and the API:
    it is allocated to the customer's open invoices, oldest due first."""

    class Meta:
        model = Payment
        fields = ["customer", "method", "amount", "currency", "received_on", "reference"]

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            self.recorded = services.payment_record(
                customer=data["customer"],
                method=data["method"],
                amount=data["amount"],
                currency=data["currency"],
                received_on=data["received_on"],
                reference=data.get("reference", ""),
                actor=self.request_user,
            )
        except DomainError as exc:
            raise ValidationError(exc.message) from exc
        return data


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    list_display = [
        "number",
        "customer",
        "method",
        "amount",
        "currency",
        "received_on",
        "allocated_amount",
        "method_accepted",
        "source",
        "status",
    ]
    list_filter = ["method", "source", "currency", "method_accepted", "status"]
    search_fields = ["number", "reference", "customer__name"]
    list_select_related = ["customer"]
    date_hierarchy = "received_on"
    inlines = [AllocationInline]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = PaymentAddForm
        form = super().get_form(request, obj, **kwargs)
        form.request_user = request.user
        return form

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Payment._meta.fields] if obj else []

    def get_inlines(self, request, obj):
        return [AllocationInline, RefundInline] if obj else []

    def save_model(self, request, obj, form, change):
        if not change:
            # The service has saved it already, in the form's clean().
            obj.pk = form.recorded.pk
            obj.__dict__.update(form.recorded.__dict__)

    def has_delete_permission(self, request, obj=None):
        return False


# --- Dunning -------------------------------------------------------------------------------------
from .models import DunningItem, DunningLevel, DunningNotice  # noqa: E402


@admin.register(DunningLevel)
class DunningLevelAdmin(admin.ModelAdmin):
    """Reminder levels. Subject and body are Django templates with: customer, seller, as_of,
    invoices (number, due_date, days_overdue, balance, level_name, new, fee), invoice_count,
    invoice_table (plain text), overdue_total, fee_total, currency, level. A template that does
    not render is refused with the error on the field."""

    list_display = ["name", "days_overdue", "tone", "fee", "active"]
    list_editable = ["active"]
    ordering = ["days_overdue"]


class DunningItemInline(admin.TabularInline):
    model = DunningItem
    extra = 0
    can_delete = False
    readonly_fields = ["invoice", "level", "days_overdue", "balance", "fee", "fee_invoice"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(DunningNotice)
class DunningNoticeAdmin(admin.ModelAdmin):
    list_display = ["pk", "customer", "as_of", "level", "channel", "status", "overdue_total", "currency"]
    list_filter = ["status", "channel", "tone"]
    search_fields = ["customer__name", "customer__code"]
    inlines = [DunningItemInline]
    readonly_fields = [f.name for f in DunningNotice._meta.fields]


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    """Gateway events as received, read-only; filter on *needs review* for those that posted nothing."""

    list_display = ["received_at", "provider", "event_id", "type", "outcome", "payment", "detail"]
    list_filter = ["outcome", "type", "provider"]
    search_fields = ["event_id", "gateway_payment_id", "payment__number"]
    list_select_related = ["payment"]
    date_hierarchy = "received_at"

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in WebhookEvent._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- Bank statements -----------------------------------------------------------------------------
from .models import BankAccount, BankLine, BankStatement  # noqa: E402


@admin.register(BankAccount)
class BankAccountAdmin(admin.ModelAdmin):
    """Our bank accounts and how their CSV files are read (also editable under /bank/accounts/)."""

    list_display = ["name", "iban", "currency", "created_at"]
    search_fields = ["name", "iban"]


@admin.register(BankStatement)
class BankStatementAdmin(admin.ModelAdmin):
    """Imported statements, read-only: import and match them under /bank/."""

    list_display = ["pk", "account", "source", "filename", "status", "total_lines", "processed_lines", "created_at"]
    list_filter = ["status", "source", "account"]
    search_fields = ["filename", "statement_ref", "file_sha256"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in BankStatement._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(BankLine)
class BankLineAdmin(admin.ModelAdmin):
    """Statement lines, read-only: match or ignore them from the queue under /bank/queue/."""

    list_display = ["statement", "line_no", "booking_date", "amount", "currency", "counterparty_name", "status"]
    list_filter = ["status", "currency"]
    search_fields = ["remittance", "counterparty_name", "counterparty_iban", "entry_ref"]
    list_select_related = ["statement"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in BankLine._meta.fields]

    def has_add_permission(self, request):
        return False


# --- Penalty runs and assessments, refunds, statements (read-only) -------------------------------
from billing.admin_base import ReadOnlyAdmin, RunBatchInline  # noqa: E402

from .models import PenaltyAssessment, PenaltyRun, PenaltyRunBatch, StatementDelivery  # noqa: E402


class PenaltyRunBatchInline(RunBatchInline):
    model = PenaltyRunBatch


@admin.register(PenaltyRun)
class PenaltyRunAdmin(ReadOnlyAdmin):
    """Late-payment penalty runs (daily by beat, or `manage.py assess_penalties`), with their
    totals, errors and stored batches."""

    list_display = [
        "__str__",
        "status",
        "total_batches",
        "processed_batches",
        "candidates",
        "assessments",
        "penalty_invoices",
        "interest_total",
        "fee_total",
        "started_at",
        "finished_at",
    ]
    list_filter = ["status"]
    date_hierarchy = "started_at"
    inlines = [PenaltyRunBatchInline]


@admin.register(PenaltyAssessment)
class PenaltyAssessmentAdmin(ReadOnlyAdmin):
    """One row per overdue invoice and period: the computation behind each penalty invoice.
    Waive a penalty from its invoice's page."""

    list_display = ["invoice", "period_end", "days", "interest", "fee", "capped", "penalty_invoice", "waived_at"]
    list_filter = ["capped", ("waived_at", admin.EmptyFieldListFilter)]
    search_fields = ["invoice__number", "penalty_invoice__number", "invoice__customer__name"]
    list_select_related = ["invoice", "penalty_invoice"]
    date_hierarchy = "period_end"


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin):
    """Money paid back from a payment; record refunds on the payment's page or by the API."""

    list_display = ["payment", "amount", "currency", "method", "refunded_on", "source", "created_by"]
    list_filter = ["method", "source", "currency"]
    search_fields = ["payment__number", "reference", "reason", "payment__customer__name"]
    list_select_related = ["payment", "created_by"]
    date_hierarchy = "refunded_on"


@admin.register(StatementDelivery)
class StatementDeliveryAdmin(ReadOnlyAdmin):
    """Monthly statements e-mailed to electronic customers: one per customer and period."""

    list_display = ["customer", "period", "as_of", "open_total", "credit_total", "currency", "sent_at"]
    search_fields = ["customer__name", "customer__code"]
    list_select_related = ["customer"]
    date_hierarchy = "as_of"
