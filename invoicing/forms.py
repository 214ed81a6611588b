"""Browser forms for invoices."""

from django import forms

from billing.forms import ListFilter
from billing.models import Customer

from .models import InvoiceKind, InvoiceStatus


class InvoiceListFilter(ListFilter):
    status = forms.ChoiceField(
        required=False, choices=[("", "Any status"), ("overdue", "Overdue"), *InvoiceStatus.choices]
    )
    kind = forms.ChoiceField(required=False, choices=[("", "Any kind"), *InvoiceKind.choices])
    customer = forms.ModelChoiceField(queryset=Customer.objects.none(), required=False, empty_label="Any customer")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["customer"].queryset = Customer.objects.only("pk", "name", "code").order_by("name")
