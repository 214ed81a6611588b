"""Browser forms for order entry."""

from datetime import datetime, timedelta
from decimal import Decimal

from django import forms
from django.core import signing
from django.utils import timezone

from billing.forms import BootstrapForm, ListFilter
from billing.models import Customer

from .models import OrderStatus, Product

ENTRY_SALT = "orders.entry-started"
# A form left open longer than this is not timing anyone's order entry any more.
ENTRY_MAX_AGE = timedelta(hours=12)


def entry_token(now: datetime | None = None) -> str:
    """A signed stamp of when the order form was first shown (feeds the order-entry-speed KPI)."""
    return signing.dumps((now or timezone.now()).isoformat(), salt=ENTRY_SALT)


def entry_started_at(token: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(signing.loads(token, salt=ENTRY_SALT, max_age=ENTRY_MAX_AGE))
    except (signing.BadSignature, TypeError, ValueError):
        return None
    return value if value <= timezone.now() else None


class CustomerChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        label = f"{obj.name} · {obj.code} · {obj.currency}"
        return f"{label} (on hold)" if obj.on_hold else label


class ProductChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return f"{obj.sku} — {obj.name} · {obj.unit_price} / {obj.unit}"


class OrderForm(BootstrapForm):
    customer = CustomerChoiceField(queryset=Customer.objects.none(), empty_label="Choose a customer…")
    customer_reference = forms.CharField(
        required=False, max_length=80, label="Customer reference", help_text="The customer's purchase order number."
    )
    order_date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    entry_token = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["customer"].queryset = Customer.objects.only("pk", "name", "code", "currency", "on_hold")
        self.fields["customer"].widget.attrs["autofocus"] = True


class OrderLineForm(BootstrapForm):
    product = ProductChoiceField(queryset=Product.objects.none(), empty_label="Choose a product…")
    quantity = forms.DecimalField(
        max_digits=14,
        decimal_places=3,
        min_value=Decimal("0.001"),
        widget=forms.NumberInput(attrs={"step": "any", "min": "0.001"}),
    )
    unit_price = forms.DecimalField(
        required=False,
        max_digits=14,
        decimal_places=2,
        min_value=Decimal("0"),
        label="Unit price",
        help_text="Leave empty for the list price.",
        widget=forms.NumberInput(attrs={"step": "0.01", "min": "0", "placeholder": "List price"}),
    )
    discount_percent = forms.DecimalField(
        required=False,
        max_digits=5,
        decimal_places=2,
        min_value=Decimal("0"),
        max_value=Decimal("100"),
        label="Discount %",
        widget=forms.NumberInput(attrs={"step": "0.01", "min": "0", "max": "100", "placeholder": "0"}),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["product"].queryset = Product.objects.filter(active=True).order_by("sku")


class BaseOrderLineFormSet(forms.BaseFormSet):
    def lines(self) -> list[dict]:
        """The filled-in lines, as order_create() takes them."""
        return [
            {
                "product": f.cleaned_data["product"],
                "quantity": f.cleaned_data["quantity"],
                "unit_price": f.cleaned_data.get("unit_price"),
                "discount_percent": f.cleaned_data.get("discount_percent") or Decimal("0"),
            }
            for f in self.forms
            if f.cleaned_data
        ]


OrderLineFormSet = forms.formset_factory(OrderLineForm, formset=BaseOrderLineFormSet, extra=3, max_num=200)


class OrderListFilter(ListFilter):
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *OrderStatus.choices])
    customer = forms.ModelChoiceField(queryset=Customer.objects.none(), required=False, empty_label="Any customer")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["customer"].queryset = Customer.objects.only("pk", "name", "code").order_by("name")


class OrderCancelForm(BootstrapForm):
    reason = forms.CharField(
        required=False,
        max_length=255,
        label="Reason",
        help_text="Kept in the order's history.",
        widget=forms.TextInput(attrs={"autofocus": True}),
    )
