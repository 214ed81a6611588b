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
    # The drill-down from the KPI dashboard's aging: open invoices and penalties past due that long today.
    bucket = forms.ChoiceField(
        required=False,
        label="Past due",
        choices=[
            ("", "Any age"),
            ("current", "Not yet due"),
            ("1-30", "1–30 days"),  # noqa: RUF001
            ("31-60", "31–60 days"),  # noqa: RUF001
            ("61-90", "61–90 days"),  # noqa: RUF001
            ("90-plus", "90+ days"),
        ],
    )
    currency = forms.CharField(
        required=False, max_length=3, widget=forms.TextInput(attrs={"placeholder": "EUR", "size": 4})
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["customer"].queryset = Customer.objects.only("pk", "name", "code").order_by("name")

    def clean_currency(self):
        return self.cleaned_data["currency"].strip().upper()


class BillingRunStartForm(BootstrapForm):
    as_of = forms.DateField(
        label="Bill orders fulfilled on or before",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        input_formats=["%Y-%m-%d"],
        help_text="Weekly and monthly customers are billed once their period has ended on this date.",
    )
