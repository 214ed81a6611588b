from django.contrib import admin

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
        from .services import audit_record

        super().save_model(request, obj, form, change)
        if not obj.code:
            obj.code = f"C{obj.pk:05d}"
            obj.save(update_fields=["code"])
        audit_record(
            actor=request.user,
            action="customer.updated" if change else "customer.created",
            obj=obj,
            changes={"fields": form.changed_data},
        )


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor", "action", "object_repr"]
    list_filter = ["action", "content_type"]
    search_fields = ["object_repr", "action"]
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
