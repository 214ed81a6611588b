"""Browser forms for invoices."""

from django import forms

from billing.forms import BootstrapForm, ListFilter
from billing.models import Customer

from .models import InvoiceKind, InvoiceStatus


class InvoiceListFilter(ListFilter):
    status = forms.ChoiceField(
        required=False, choices=[("", "Any status"), ("overdue", "Overdue"), *InvoiceStatus.choices]
    )
    kind = forms.ChoiceField(required=False, choices=[("", "Any kind"), *InvoiceKind.choices])
    customer = forms.ModelChoiceField(queryset=Customer.objects.none(), required=False, empty_label="Any customer")
    issued = forms.DateField(
        required=False, label="Issued on", widget=forms.DateInput(attrs={"type": "date"}), input_formats=["%Y-%m-%d"]
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["customer"].queryset = Customer.objects.only("pk", "name", "code").order_by("name")


class BillingRunStartForm(BootstrapForm):
    as_of = forms.DateField(
        label="Bill orders fulfilled on or before",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        input_formats=["%Y-%m-%d"],
        help_text="Weekly and monthly customers are billed once their period has ended on this date.",
    )
