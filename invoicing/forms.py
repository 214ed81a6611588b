"""Browser forms for invoices."""

from decimal import Decimal

from django import forms

from billing.forms import BootstrapForm, ListFilter, RunStartForm
from billing.models import Customer

from .models import Invoice, InvoiceKind, InvoiceStatus


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


class BillingRunStartForm(RunStartForm):
    label = "Bill orders fulfilled on or before"
    help_text = "Weekly and monthly customers are billed once their period has ended on this date."


class CreditApplyForm(BootstrapForm):
    """Apply a credit note's credit left to one of the customer's open invoices."""

    invoice = forms.ModelChoiceField(
        queryset=None,
        label="Invoice to settle",
        empty_label=None,
        error_messages={"invalid_choice": "Choose one of the customer's open invoices in this currency."},
    )
    amount = forms.DecimalField(
        max_digits=14,
        decimal_places=2,
        min_value=Decimal("0.01"),
        required=False,
        label="Amount (empty: as much as possible)",
        widget=forms.NumberInput(attrs={"step": "0.01", "min": "0.01", "class": "text-end"}),
    )

    def __init__(self, *args, note, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["invoice"].queryset = (
            Invoice.objects.filter(
                customer_id=note.customer_id,
                currency=note.currency,
                kind__in=[InvoiceKind.INVOICE, InvoiceKind.PENALTY],
                status__in=[InvoiceStatus.ISSUED, InvoiceStatus.PARTIALLY_PAID],
            )
            .exclude(pk=note.pk)
            .order_by("due_date", "pk")
        )
        self.fields["invoice"].label_from_instance = lambda i: (
            f"{i.number} — due {i.due_date:%d %b %Y}, balance {i.balance} {i.currency}"
        )


class InvoiceVoidForm(BootstrapForm):
    reason = forms.CharField(
        label="Reason",
        max_length=255,
        widget=forms.TextInput(attrs={"autofocus": True, "placeholder": "e.g. issued twice, never sent"}),
        help_text="Kept on the invoice and in its history.",
    )


class CreditMode:
    FULL = "full"
    LINES = "lines"
    AMOUNT = "amount"
    CHOICES = [
        (FULL, "Everything left on the invoice"),
        (LINES, "Chosen lines and quantities"),
        (AMOUNT, "An amount"),
    ]


class CreditNoteForm(BootstrapForm):
    """A credit note for an issued invoice: in full, by line and quantity, or by a net amount at one
    of the invoice's tax rates. One quantity field per line (`qty_<line id>`), blank = not credited.
    The rules (what is left on a line or rate) are the service's: the view maps its refusals here."""

    mode = forms.ChoiceField(label="What to credit", choices=CreditMode.CHOICES, widget=forms.RadioSelect)
    amount = forms.DecimalField(
        label="Net amount", required=False, max_digits=14, decimal_places=2, min_value=Decimal("0.01")
    )
    tax_percent = forms.TypedChoiceField(label="Tax rate", required=False, coerce=Decimal, empty_value=None)
    reason = forms.CharField(
        label="Reason",
        max_length=255,
        help_text="Why the invoice is corrected (e.g. goods returned, price error).",
    )

    def __init__(self, *args, invoice, lines, **kwargs):
        super().__init__(*args, **kwargs)
        self.invoice = invoice
        self.lines = lines  # [(InvoiceLine, remaining quantity)]
        rates = [(str(Decimal(b["rate"])), f"{Decimal(b['rate']).normalize():f} %") for b in invoice.tax_breakdown]
        self.fields["tax_percent"].choices = rates if len(rates) == 1 else [("", "Choose a rate"), *rates]
        for line, remaining in lines:
            self.fields[f"qty_{line.pk}"] = forms.DecimalField(
                label=f"Quantity to credit on line {line.position}",
                required=False,
                max_digits=12,
                decimal_places=3,
                min_value=Decimal("0"),
                max_value=remaining,
                widget=forms.NumberInput(attrs={"step": "any", "class": "text-end", "style": "width:7rem"}),
                disabled=remaining <= 0,
            )

    def line_rows(self):
        return [(line, remaining, self[f"qty_{line.pk}"]) for line, remaining in self.lines]

    def clean(self):
        data = super().clean()
        mode = data.get("mode")
        if mode == CreditMode.LINES:
            data["credit_lines"] = [
                {"line": line, "quantity": data[f"qty_{line.pk}"]}
                for line, _remaining in self.lines
                if data.get(f"qty_{line.pk}")
            ]
            if not data["credit_lines"] and not any(self.has_error(f"qty_{line.pk}") for line, _ in self.lines):
                raise forms.ValidationError("Enter the quantity to credit on at least one line.", code="no_lines")
        elif mode == CreditMode.AMOUNT:
            if data.get("amount") is None and not self.has_error("amount"):
                self.add_error("amount", "Enter the net amount to credit.")
            several_rates = len(self.fields["tax_percent"].choices) > 1
            if several_rates and data.get("tax_percent") is None and not self.has_error("tax_percent"):
                self.add_error("tax_percent", "Choose the tax rate the amount carries.")
        return data

    def service_arguments(self) -> dict:
        data = self.cleaned_data
        mode = data["mode"]
        return {
            "lines": data["credit_lines"] if mode == CreditMode.LINES else None,
            "amount": data["amount"] if mode == CreditMode.AMOUNT else None,
            "tax_percent": data.get("tax_percent") if mode == CreditMode.AMOUNT else None,
        }

    def add_service_error(self, error) -> None:
        """Show a service refusal next to the field it is about."""
        placed = False
        for field, messages in (error.details or {}).items():
            if field in ("amount", "tax_percent", "reason"):
                for message in messages if isinstance(messages, list) else [messages]:
                    self.add_error(field, message)
                placed = True
        if not placed:
            self.add_error(None, error.message)
