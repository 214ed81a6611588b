"""Browser forms for customers, and the Bootstrap rendering shared by every app's forms."""

import re

from django import forms
from django.forms.boundfield import BoundField

from .models import Customer, PaymentTerms


class BootstrapBoundField(BoundField):
    """Adds Bootstrap's control classes, and `is-invalid` once the field has errors."""

    def build_widget_attrs(self, attrs, widget=None):
        attrs = super().build_widget_attrs(attrs, widget)
        widget = widget or self.field.widget
        if widget.is_hidden:
            return attrs
        if isinstance(widget, forms.CheckboxInput):
            css = "form-check-input"
        elif isinstance(widget, forms.Select | forms.SelectMultiple):
            css = "form-select"
        else:
            css = "form-control"
        if self.errors:
            css += " is-invalid"
        attrs["class"] = " ".join(c for c in (widget.attrs.get("class", ""), attrs.get("class", ""), css) if c)
        return attrs


class BootstrapMixin:
    bound_field_class = BootstrapBoundField


class BootstrapForm(BootstrapMixin, forms.Form):
    pass


class BootstrapModelForm(BootstrapMixin, forms.ModelForm):
    pass


class CurrencyField(forms.CharField):
    """An ISO 4217 code, upper-cased."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 3)
        kwargs.setdefault("min_length", 3)
        kwargs.setdefault("help_text", "ISO 4217 code, e.g. EUR, USD, GBP.")
        kwargs.setdefault(
            "widget",
            forms.TextInput(attrs={"autocapitalize": "characters", "class": "text-uppercase", "style": "width:7rem"}),
        )
        super().__init__(**kwargs)

    def clean(self, value):
        value = super().clean((value or "").strip().upper())
        if value and not re.fullmatch(r"[A-Z]{3}", value):
            raise forms.ValidationError("Use a three-letter ISO 4217 code, e.g. EUR.")
        return value


class CustomerForm(BootstrapModelForm):
    """Master data of a billing account. Saving goes through billing.services, not ModelForm.save()."""

    currency = CurrencyField(initial=Customer._meta.get_field("currency").default)

    class Meta:
        model = Customer
        fields = [
            "name",
            "code",
            "legal_name",
            "tax_id",
            "email",
            "phone",
            "currency",
            "payment_terms",
            "billing_method",
            "billing_cycle",
            "credit_limit",
            "on_hold",
            "on_hold_reason",
            "billing_line1",
            "billing_line2",
            "billing_postal_code",
            "billing_city",
            "billing_region",
            "billing_country",
            "notes",
        ]
        widgets = {
            "notes": forms.Textarea(attrs={"rows": 3}),
            "billing_country": forms.TextInput(attrs={"class": "text-uppercase", "style": "width:5rem"}),
        }
        help_texts = {
            "legal_name": "Printed on invoices; the name is used when empty.",
            "on_hold": "Orders of a customer on hold cannot be confirmed.",
            "on_hold_reason": "Required when the customer is on hold.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["name"].widget.attrs["autofocus"] = True
        self.fields["payment_terms"].queryset = PaymentTerms.objects.order_by("name")
        self.fields["payment_terms"].empty_label = "Choose payment terms…"
        self.fields["credit_limit"].widget.attrs.update({"min": "0", "step": "0.01"})
        if self.instance.pk:
            # The code identifies the customer on issued invoices and in integrations: it stays.
            del self.fields["code"]

    def clean_billing_country(self):
        return (self.cleaned_data.get("billing_country") or "").strip().upper()

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("on_hold") and not (cleaned.get("on_hold_reason") or "").strip():
            self.add_error("on_hold_reason", "Say why the customer is on hold.")
        return cleaned


class ListFilter(BootstrapForm):
    """The search box every list page has; apps add their own filters."""

    q = forms.CharField(required=False, label="Search", max_length=100)

    def clean_q(self):
        return self.cleaned_data["q"].strip()


class CustomerListFilter(ListFilter):
    status = forms.ChoiceField(
        required=False, choices=[("", "Any status"), ("active", "Active"), ("on_hold", "On hold")]
    )
    currency = forms.CharField(required=False, max_length=3)

    def clean_currency(self):
        return self.cleaned_data["currency"].strip().upper()
