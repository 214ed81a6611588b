from django.contrib import admin, messages

from billing.errors import DomainError
from orders.models import Order

from . import services
from .models import Invoice, InvoiceLine, NumberSequence


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    extra = 0
    can_delete = False
    fields = [
        "position",
        "order_number",
        "description",
        "quantity",
        "unit_price",
        "discount_percent",
        "tax_percent",
        "net_amount",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "kind",
        "customer",
        "issue_date",
        "due_date",
        "status",
        "gross_total",
        "amount_paid",
        "pdf_status",
    ]
    list_filter = ["kind", "status", "pdf_status", "currency"]
    search_fields = ["number", "customer__name", "customer__code"]
    list_select_related = ["customer"]
    date_hierarchy = "issue_date"
    inlines = [InvoiceLineInline]
    actions = ["issue", "regenerate_pdf"]

    def get_readonly_fields(self, request, obj=None):
        # Every field is read-only: invoices change only through their actions.
        return [f.name for f in Invoice._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Issue selected draft invoices")
    def issue(self, request, queryset):
        for invoice in queryset.order_by("pk"):
            try:
                services.invoice_issue(invoice=invoice, actor=request.user)
                self.message_user(request, f"Issued {invoice.pk}.", messages.SUCCESS)
            except DomainError as exc:
                self.message_user(request, f"{invoice}: {exc.message}", messages.ERROR)

    @admin.action(description="Regenerate the PDF")
    def regenerate_pdf(self, request, queryset):
        for invoice in queryset.order_by("pk"):
            try:
                services.invoice_request_pdf(invoice=invoice, actor=request.user)
            except DomainError as exc:
                self.message_user(request, f"{invoice}: {exc.message}", messages.ERROR)
        self.message_user(request, "PDF rendering requested.", messages.SUCCESS)


@admin.register(NumberSequence)
class NumberSequenceAdmin(admin.ModelAdmin):
    list_display = ["series", "year", "last_number"]
    readonly_fields = ["series", "year", "last_number"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def invoice_fulfilled_orders(modeladmin, request, queryset):
    for order in queryset.order_by("pk"):
        try:
            invoice = services.invoice_create_from_orders(orders=[order], actor=request.user)
            modeladmin.message_user(request, f"{order}: draft invoice #{invoice.pk} created.", messages.SUCCESS)
        except DomainError as exc:
            modeladmin.message_user(request, f"{order}: {exc.message}", messages.ERROR)


invoice_fulfilled_orders.short_description = "Create a draft invoice from each selected order"
admin.site._registry[Order].actions = [*admin.site._registry[Order].actions, invoice_fulfilled_orders]


# --- Billing runs, print batches, credit applications (read-only) -------------------------------
from billing.admin_base import ReadOnlyAdmin, ReadOnlyInline, RunBatchInline  # noqa: E402

from .models import BillingRun, BillingRunBatch, CreditApplication, PrintBatch, PrintBatchItem  # noqa: E402


class BillingRunBatchInline(RunBatchInline):
    model = BillingRunBatch


@admin.register(BillingRun)
class BillingRunAdmin(ReadOnlyAdmin):
    """Billing runs with their counts, errors and stored batches; start one under /billing-runs/
    or with `manage.py run_billing`."""

    list_display = [
        "__str__",
        "status",
        "total_groups",
        "processed_groups",
        "invoices_created",
        "orders_billed",
        "skipped_groups",
        "started_by",
        "started_at",
        "finished_at",
    ]
    list_filter = ["status"]
    list_select_related = ["started_by"]
    date_hierarchy = "started_at"
    inlines = [BillingRunBatchInline]


class PrintBatchItemInline(ReadOnlyInline):
    model = PrintBatchItem
    fields = ["invoice", "document", "title", "customer", "added_at"]


@admin.register(PrintBatch)
class PrintBatchAdmin(ReadOnlyAdmin):
    """The day's paper mail; download it and mark it posted under /print-batches/."""

    list_display = ["__str__", "status", "invoice_count", "page_count", "closed_at", "posted_at", "posted_by"]
    list_filter = ["status"]
    list_select_related = ["posted_by"]
    date_hierarchy = "date"
    inlines = [PrintBatchItemInline]


@admin.register(CreditApplication)
class CreditApplicationAdmin(ReadOnlyAdmin):
    """Credit notes applied to invoice balances."""

    list_display = ["credit_note", "invoice", "amount", "created_by", "created_at"]
    search_fields = ["credit_note__number", "invoice__number"]
    list_select_related = ["credit_note", "invoice", "created_by"]
    date_hierarchy = "created_at"
