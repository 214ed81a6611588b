"""Browser forms for payments."""

import json
from decimal import Decimal

from django import forms
from django.urls import reverse
from django.utils import timezone

from billing.forms import BootstrapForm, CurrencyField, ListFilter, RunStartForm
from billing.models import Customer, PaymentMethod
from invoicing.models import OPEN_STATUSES, Invoice, InvoiceKind
from orders.forms import CustomerChoiceField

from .models import PaymentSource

# The fields the allocation preview reads: customer, amount, chosen invoice, amounts typed per invoice.
PREVIEW_INCLUDE = "#id_customer, #id_amount, #id_invoice, .alloc-input"


class InvoiceChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        due = f"due {obj.due_date:%d %b %Y}" if obj.due_date else "no due date"
        return f"{obj.number} · {due} · balance {obj.balance:,.2f} {obj.currency}"


class PaymentForm(BootstrapForm):
    customer = CustomerChoiceField(queryset=Customer.objects.none(), empty_label="Choose a customer…")
    method = forms.ChoiceField(choices=PaymentMethod.choices)
    amount = forms.DecimalField(
        max_digits=14,
        decimal_places=2,
        min_value=Decimal("0.01"),
        widget=forms.NumberInput(attrs={"step": "0.01", "min": "0.01", "class": "text-end"}),
    )
    currency = CurrencyField(help_text="")
    received_on = forms.DateField(
        label="Received on", widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    reference = forms.CharField(required=False, max_length=140, help_text="Bank or gateway reference, remittance text.")
    invoice = InvoiceChoiceField(
        queryset=Invoice.objects.none(),
        required=False,
        label="Allocate to invoice",
        empty_label="Open invoices, oldest due first",
        help_text="The payment settles up to this invoice's balance; any rest stays as customer credit. "
        "Or type the amount per invoice below.",
    )

    def __init__(self, *args, customer: Customer | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.customer = customer
        self.fields["customer"].queryset = Customer.objects.select_related("payment_terms").order_by("name")
        # Choosing the customer re-renders the form (htmx) with their currency, methods and open invoices.
        self.fields["customer"].widget.attrs.update(
            {
                "autofocus": True,
                "hx-get": reverse("payment-create"),
                "hx-trigger": "change",
                "hx-target": "#payment-form-body",
                "hx-select": "#payment-form-body",
                "hx-swap": "outerHTML",
            }
        )
        invoices = (
            Invoice.objects.filter(status__in=OPEN_STATUSES)
            .exclude(kind=InvoiceKind.CREDIT_NOTE)
            .order_by("due_date", "pk")
        )
        if customer is not None:
            invoices = invoices.filter(customer=customer)
            accepted = customer.payment_terms.accepted_methods or []
            labels = dict(PaymentMethod.choices)
            names = ", ".join(str(labels.get(m, m)) for m in accepted) or "none"
            self.fields["method"].help_text = f"Accepted under {customer.payment_terms.name}: {names}."
            # The page warns (without refusing) as soon as a method the terms do not accept is chosen.
            self.fields["method"].widget.attrs["data-accepted"] = json.dumps(list(accepted))
        self.fields["invoice"].queryset = invoices
        # Typing the amount or choosing an invoice refreshes the allocation preview (htmx).
        preview = {
            "hx-get": reverse("payment-allocation-preview"),
            "hx-target": "#allocation-preview",
            "hx-swap": "outerHTML",
            "hx-include": PREVIEW_INCLUDE,
        }
        self.fields["amount"].widget.attrs.update({**preview, "hx-trigger": "input changed delay:300ms"})
        self.fields["invoice"].widget.attrs.update({**preview, "hx-trigger": "change"})

    @property
    def method_not_accepted(self) -> bool:
        """The chosen method is not one the customer's terms accept (a warning; the payment is still recorded)."""
        if self.customer is None:
            return False
        method = self["method"].value()
        return bool(method) and method not in (self.customer.payment_terms.accepted_methods or [])

    def clean_received_on(self):
        received_on = self.cleaned_data["received_on"]
        if received_on > timezone.localdate():
            raise forms.ValidationError("A payment cannot be received in the future.")
        return received_on

    def clean(self):
        cleaned = super().clean()
        customer, invoice, currency = cleaned.get("customer"), cleaned.get("invoice"), cleaned.get("currency")
        if invoice and customer and invoice.customer_id != customer.pk:
            self.add_error("invoice", f"Invoice {invoice} belongs to another customer.")
        elif invoice and currency and invoice.currency != currency:
            self.add_error("invoice", f"Invoice {invoice} is in {invoice.currency}; the payment is in {currency}.")
        return cleaned


class PaymentListFilter(ListFilter):
    method = forms.ChoiceField(required=False, choices=[("", "Any method"), *PaymentMethod.choices])
    credit = forms.ChoiceField(
        required=False,
        label="Allocation",
        choices=[("", "Allocated or not"), ("unallocated", "With unallocated credit"), ("allocated", "Fully used")],
    )
    customer = forms.ModelChoiceField(queryset=Customer.objects.none(), required=False, empty_label="Any customer")
    source = forms.ChoiceField(required=False, choices=[("", "Any source"), *PaymentSource.choices])
    received_from = forms.DateField(
        required=False, label="Received from", widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    received_to = forms.DateField(
        required=False, label="Received to", widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["customer"].queryset = Customer.objects.only("pk", "name", "code").order_by("name")


class CollectionsFilter(ListFilter):
    BUCKETS = [
        ("", "Any age"),
        ("1_30", "1-30 days"),
        ("31_60", "31-60 days"),
        ("61_90", "61-90 days"),
        ("90", "90+ days"),
    ]

    currency = forms.CharField(required=False, max_length=3, widget=forms.TextInput(attrs={"size": 4}))
    bucket = forms.ChoiceField(required=False, choices=BUCKETS, label="Oldest overdue")
    level = forms.ChoiceField(required=False, label="Last reminder")
    flag = forms.ChoiceField(
        required=False,
        label="Flags",
        choices=[("", "Any"), ("on_hold", "On hold"), ("disputed", "With a dispute"), ("clear", "Neither")],
    )

    def __init__(self, *args, **kwargs):
        from .models import DunningLevel

        super().__init__(*args, **kwargs)
        self.fields["level"].choices = [
            ("", "Any"),
            ("none", "None sent yet"),
            *[(str(lv.pk), lv.name) for lv in DunningLevel.objects.order_by("days_overdue")],
        ]

    def clean_currency(self):
        return self.cleaned_data["currency"].strip().upper()


class InvoiceDisputeForm(BootstrapForm):
    disputed = forms.BooleanField(required=False, widget=forms.HiddenInput)
    reason = forms.CharField(required=False, max_length=255, label="What does the customer dispute?")


class PenaltyRunStartForm(RunStartForm):
    label = "Assess penalties up to"
    help_text = (
        "Interest and fees on invoices overdue past their grace days, for the days since each invoice's "
        "last assessment. A second run for the same date charges nothing more."
    )


class PenaltyWaiveForm(BootstrapForm):
    reason = forms.CharField(
        max_length=200,
        label="Why is the penalty waived?",
        error_messages={
            "required": "Say why the penalty is waived: the reason goes on the credit note and in the audit trail."
        },
    )


class RefundForm(BootstrapForm):
    amount = forms.DecimalField(
        max_digits=14,
        decimal_places=2,
        min_value=Decimal("0.01"),
        widget=forms.NumberInput(attrs={"step": "0.01", "min": "0.01", "class": "text-end", "autofocus": True}),
    )
    method = forms.ChoiceField(choices=PaymentMethod.choices, help_text="How the money goes back.")
    refunded_on = forms.DateField(
        label="Refunded on", widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    reference = forms.CharField(required=False, max_length=140, help_text="Bank or gateway reference of the refund.")
    reason = forms.CharField(max_length=255, widget=forms.TextInput(attrs={"placeholder": "Overpayment returned"}))


class ReverseForm(BootstrapForm):
    reason = forms.CharField(
        max_length=255,
        widget=forms.TextInput(attrs={"placeholder": "Check returned unpaid", "autofocus": True}),
        help_text="Bounced check, chargeback, … Kept on the payment and in its history.",
    )
