from django.contrib import admin, messages

from billing.errors import DomainError

from . import services
from .models import Order, OrderEvent, OrderLine, Product


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["sku", "name", "unit", "unit_price", "tax_rate", "active"]
    list_filter = ["active", "tax_rate"]
    search_fields = ["sku", "name"]


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0
    fields = [
        "position",
        "product",
        "description",
        "quantity",
        "unit_price",
        "discount_percent",
        "tax_percent",
        "net_amount",
    ]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class OrderEventInline(admin.TabularInline):
    model = OrderEvent
    extra = 0
    readonly_fields = ["from_status", "to_status", "actor", "note", "created_at"]
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


def _run(modeladmin, request, queryset, action, label):
    done = 0
    for order in queryset.order_by("pk"):
        try:
            action(order=order, actor=request.user)
            done += 1
        except DomainError as exc:
            modeladmin.message_user(request, f"{order}: {exc.message}", messages.ERROR)
    if done:
        modeladmin.message_user(request, f"{label} {done} order(s).", messages.SUCCESS)


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["number", "customer", "order_date", "status", "gross_total", "currency", "channel"]
    list_filter = ["status", "channel", "currency"]
    search_fields = ["number", "customer__name", "customer_reference"]
    list_select_related = ["customer"]
    date_hierarchy = "order_date"
    readonly_fields = [
        "number",
        "status",
        "net_total",
        "tax_total",
        "gross_total",
        "entry_started_at",
        "confirmed_at",
        "fulfilled_at",
        "created_by",
        "created_at",
        "currency",
    ]
    inlines = [OrderLineInline, OrderEventInline]
    actions = ["confirm", "fulfill", "cancel"]

    def has_add_permission(self, request):
        # Orders are entered through the order entry page or the API, which apply the rules.
        return False

    @admin.action(description="Confirm selected orders")
    def confirm(self, request, queryset):
        _run(self, request, queryset, services.order_confirm, "Confirmed")

    @admin.action(description="Mark selected orders fulfilled")
    def fulfill(self, request, queryset):
        _run(self, request, queryset, services.order_fulfill, "Fulfilled")

    @admin.action(description="Cancel selected orders")
    def cancel(self, request, queryset):
        _run(self, request, queryset, services.order_cancel, "Cancelled")


# --- CSV imports (read-only) --------------------------------------------------------------------
from billing.admin_base import ReadOnlyAdmin  # noqa: E402

from .models import OrderImport  # noqa: E402


@admin.register(OrderImport)
class OrderImportAdmin(ReadOnlyAdmin):
    """CSV files of orders uploaded under /orders/import/, with their counts and per-row results."""

    list_display = [
        "__str__",
        "status",
        "row_count",
        "error_count",
        "created_count",
        "failed_count",
        "created_by",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status"]
    search_fields = ["filename"]
    list_select_related = ["created_by"]
    date_hierarchy = "created_at"
    exclude = ["payload"]  # the parsed file, kept for the import; the results say what came of it
