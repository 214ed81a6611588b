"""Browser forms for bank accounts, statement uploads and the bank line queue."""

import re

from django import forms

from billing.forms import BootstrapForm, BootstrapModelForm, CurrencyField, ListFilter
from billing.models import Customer
from invoicing.models import OPEN_STATUSES, Invoice, InvoiceKind
from orders.forms import CustomerChoiceField

from .bank import CSV_DEFAULTS, MAX_BYTES, normalise_iban
from .forms import InvoiceChoiceField
from .models import BankAccount, BankLineStatus, BankStatementStatus

IBAN_RE = re.compile(r"[A-Z]{2}\d{2}[A-Z0-9]{10,30}")

MAPPING_FIELDS = {
    "map_date": ("date", "Date column", "Header name or column number, e.g. Booking date or 1."),
    "map_amount": ("amount", "Amount column", "Signed amount; leave empty when the bank has credit and debit columns."),
    "map_credit": ("credit", "Credit column", "Money in, when split in two columns."),
    "map_debit": ("debit", "Debit column", "Money out."),
    "map_remittance": ("remittance", "Remittance text column", "Where payers write the invoice number."),
    "map_counterparty_name": ("counterparty_name", "Payer name column", ""),
    "map_counterparty_iban": ("counterparty_iban", "Payer IBAN column", ""),
    "map_reference": ("reference", "Bank reference column", "Makes re-importing overlapping exports safe."),
    "map_end_to_end_id": ("end_to_end_id", "End-to-end id column", ""),
    "map_currency": ("currency", "Currency column", "Empty: every line is in the account's currency."),
}


class BankAccountForm(BootstrapModelForm):
    """An account and how its CSV exports are read (the column mapping is stored as JSON)."""

    currency = CurrencyField()
    decimal_separator = forms.ChoiceField(choices=[(".", "Point: 1,234.56"), (",", "Comma: 1.234,56")])
    date_format = forms.ChoiceField(
        choices=[
            ("%Y-%m-%d", "2026-11-30"),
            ("%d.%m.%Y", "30.11.2026"),
            ("%d/%m/%Y", "30/11/2026"),
            ("%m/%d/%Y", "11/30/2026"),
            ("%d-%m-%Y", "30-11-2026"),
        ]
    )
    delimiter = forms.ChoiceField(choices=[(",", "Comma"), (";", "Semicolon"), ("tab", "Tab")])
    header_rows = forms.IntegerField(
        min_value=0, max_value=20, help_text="Rows before the first entry; the last one names the columns."
    )

    class Meta:
        model = BankAccount
        fields = ["name", "iban", "currency"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, (_key, label, help_text) in MAPPING_FIELDS.items():
            self.fields[name] = forms.CharField(required=False, max_length=60, label=label, help_text=help_text)
        mapping = {**CSV_DEFAULTS, **(self.instance.csv_mapping or {})}
        for name, (key, *_rest) in MAPPING_FIELDS.items():
            self.initial.setdefault(name, mapping.get(key, ""))
        for key in ("decimal_separator", "date_format", "delimiter", "header_rows"):
            self.initial.setdefault(key, mapping[key])

    def clean_iban(self):
        iban = normalise_iban(self.cleaned_data["iban"])
        if not IBAN_RE.fullmatch(iban):
            raise forms.ValidationError("Give an IBAN: two letters, two digits, then 10 to 30 letters or digits.")
        return iban

    def clean(self):
        data = super().clean()
        if data.get("map_date") or data.get("map_amount") or data.get("map_credit") or data.get("map_debit"):
            if not data.get("map_date"):
                self.add_error("map_date", "Say which column holds the booking date.")
            if not (data.get("map_amount") or data.get("map_credit") or data.get("map_debit")):
                self.add_error("map_amount", "Say which column holds the amount, or the credit and debit columns.")
        return data

    def mapping(self) -> dict:
        data = self.cleaned_data
        if not data.get("map_date"):
            return {}
        mapping = {key: data[name].strip() for name, (key, *_rest) in MAPPING_FIELDS.items() if data.get(name)}
        mapping.update({key: data[key] for key in ("decimal_separator", "date_format", "delimiter", "header_rows")})
        return mapping


class StatementUploadForm(BootstrapForm):
    account = forms.ModelChoiceField(queryset=BankAccount.objects.none(), empty_label="Choose an account…")
    file = forms.FileField(
        help_text=f"CAMT.053 XML, or CSV read by the account's column mapping; up to {MAX_BYTES // 1024 // 1024} MB."
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account"].queryset = BankAccount.objects.order_by("name")


class StatementListFilter(ListFilter):
    account = forms.ModelChoiceField(queryset=BankAccount.objects.none(), required=False, empty_label="Any account")
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *BankStatementStatus.choices])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account"].queryset = BankAccount.objects.order_by("name")


class BankLineFilter(ListFilter):
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *BankLineStatus.choices])


class QueueFilter(ListFilter):
    status = forms.ChoiceField(
        required=False,
        choices=[("", "Suggested and unmatched"), ("suggested", "Suggested"), ("unmatched", "Unmatched")],
    )
    account = forms.ModelChoiceField(queryset=BankAccount.objects.none(), required=False, empty_label="Any account")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account"].queryset = BankAccount.objects.order_by("name")


class BankLineMatchForm(BootstrapForm):
    customer = CustomerChoiceField(queryset=Customer.objects.none(), empty_label="Choose a customer…")
    invoices = forms.ModelMultipleChoiceField(
        queryset=Invoice.objects.none(),
        required=False,
        help_text="Paid oldest due first, each up to its balance; the rest stays as credit. "
        "None chosen: the customer's open invoices, oldest due first.",
    )

    def __init__(self, *args, customer: Customer | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["customer"].queryset = Customer.objects.order_by("name")
        invoices = Invoice.objects.filter(status__in=OPEN_STATUSES).exclude(kind=InvoiceKind.CREDIT_NOTE)
        # Only the chosen customer's open invoices: choosing another customer re-renders the form.
        self.fields["invoices"].queryset = (
            invoices.filter(customer=customer).order_by("due_date", "pk") if customer else Invoice.objects.none()
        )
        self.fields["invoices"].label_from_instance = InvoiceChoiceField.label_from_instance.__get__(
            self.fields["invoices"]
        )
        self.fields["invoices"].widget.attrs["size"] = 6


class BankLineIgnoreForm(BootstrapForm):
    reason = forms.CharField(
        max_length=200, help_text="E.g. supplier refund, internal transfer; kept with the line and in the audit trail."
    )
