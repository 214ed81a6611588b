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
