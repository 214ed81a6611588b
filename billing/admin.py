from django.contrib import admin

from . import services
from .admin_base import ReadOnlyAdmin
from .models import AuditEvent, Contact, Customer, PaymentTerms, TaxRate


@admin.register(TaxRate)
class TaxRateAdmin(admin.ModelAdmin):
    list_display = ["name", "rate", "category", "active"]
    list_filter = ["category", "active"]
    search_fields = ["name"]


@admin.register(PaymentTerms)
class PaymentTermsAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "due_days",
        "discount_percent",
        "discount_days",
        "grace_days",
        "annual_interest_rate",
        "fixed_fee",
        "penalty_cap_percent",
    ]
    search_fields = ["name"]
    readonly_fields = ["printed_text"]

    @admin.display(description="Text printed on invoices")
    def printed_text(self, obj):
        return obj.text() if obj.pk else ""


class ContactInline(admin.TabularInline):
    model = Contact
    extra = 0


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    """Saves through billing.services like every other door, so admin edits are validated and audited
    field by field, contacts included."""

    list_display = [
        "code",
        "name",
        "email",
        "currency",
        "payment_terms",
        "billing_method",
        "billing_cycle",
        "credit_limit",
        "on_hold",
    ]
    list_filter = ["billing_method", "billing_cycle", "on_hold", "currency"]
    search_fields = ["code", "name", "legal_name", "tax_id", "email"]
    list_select_related = ["payment_terms"]
    inlines = [ContactInline]

    def save_model(self, request, obj, form, change):
        fields = {name: form.cleaned_data[name] for name in form.changed_data if name in form.cleaned_data}
        if change:
            saved = services.customer_update(customer=obj, actor=request.user, **fields)
        else:
            saved = services.customer_create(actor=request.user, **form.cleaned_data)
        obj.pk, obj.code = saved.pk, saved.code

    def save_related(self, request, form, formsets, change):
        contact_sets = [f for f in formsets if f.model is Contact]
        if any(f.has_changed() for f in contact_sets):
            rows = []
            for formset in contact_sets:
                for contact_form in formset.forms:
                    data = contact_form.cleaned_data
                    if not data or data.get("DELETE"):
                        continue
                    row = {name: data.get(name) for name in services.CONTACT_FIELDS}
                    row["email"] = row["email"] or ""
                    if data.get("id"):
                        row["id"] = data["id"].pk
                    rows.append(row)
            services.customer_update(customer=form.instance, actor=request.user, contacts=rows)
        for formset in contact_sets:
            # What formset.save() would have set; the admin's log message reads it. The audit trail
            # written by the service has the detail.
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        form.save_m2m()
        for formset in formsets:
            if formset.model is not Contact:
                self.save_formset(request, form, formset, change=change)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "actor", "action", "object_repr"]
    list_filter = ["action", "content_type"]
    search_fields = ["object_repr", "action"]
    readonly_fields = [f.name for f in AuditEvent._meta.fields]
