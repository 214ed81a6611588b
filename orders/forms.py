"""Browser forms: the order entry page, the product catalogue, the credit override and the CSV import."""

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django import forms
from django.core import signing
from django.db.models import Q
from django.utils import timezone

from billing.forms import BootstrapForm, BootstrapModelForm, ListFilter
from billing.models import Customer, TaxRate

from .models import OrderStatus, Product
from .services import OVERRIDE_REASON_MAX

ENTRY_SALT = "orders.entry-started"
# A form left open longer than this is not timing anyone's order entry any more.
ENTRY_MAX_AGE = timedelta(hours=12)
MAX_LINES = 500
DATE_INPUT_FORMATS = ["%Y-%m-%d", "%d/%m/%Y", "%d.%m.%Y", "%d/%m/%y"]
_LINE_KEY = re.compile(r"^lines-(\d{1,6})-(?:product|product_search|quantity|unit_price|discount_percent)$")


def entry_token(now: datetime | None = None) -> str:
    """A signed stamp of when the order form was first shown (feeds the order-entry-speed KPI)."""
    return signing.dumps((now or timezone.now()).isoformat(), salt=ENTRY_SALT)


def entry_started_at(token: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(signing.loads(token, salt=ENTRY_SALT, max_age=ENTRY_MAX_AGE))
    except (signing.BadSignature, TypeError, ValueError):
        return None
    return value if value <= timezone.now() else None


def as_id(value, digits: int = 18) -> int | None:
    """A positive integer id from form or query input ("12"), or None for anything else."""
    text = str(value if value is not None else "").strip()
    if text.isascii() and text.isdigit() and len(text) <= digits:
        return int(text)
    return None


def product_label(product: Product) -> str:
    return f"{product.sku} — {product.name}"


def customer_label(customer: Customer) -> str:
    return f"{customer.name} ({customer.code})"


class CustomerChoiceField(forms.ModelChoiceField):
    """A customer drop-down labelled with code, currency and hold (the payment form uses it)."""

    def label_from_instance(self, obj):
        label = f"{obj.name} · {obj.code} · {obj.currency}"
        return f"{label} (on hold)" if obj.on_hold else label


class OrderEntryForm(BootstrapForm):
    """The order's header on the entry page. The customer is picked from search suggestions into a
    hidden field; the visible search box only helps finding it."""

    customer_search = forms.CharField(required=False, max_length=200, label="Customer")
    customer = forms.ModelChoiceField(
        queryset=Customer.objects.select_related("payment_terms"),
        widget=forms.HiddenInput,
        error_messages={
            "required": "Choose a customer: type a code or a name and pick one from the list.",
            "invalid_choice": "That customer no longer exists; choose another.",
        },
    )
    customer_reference = forms.CharField(
        required=False, max_length=80, label="Customer reference", help_text="Their purchase order number."
    )
    order_date = forms.DateField(
        input_formats=DATE_INPUT_FORMATS,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off", "placeholder": "YYYY-MM-DD"}),
        help_text="YYYY-MM-DD or DD/MM/YYYY.",
    )
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    entry_token = forms.CharField(required=False, widget=forms.HiddenInput)
    override_reason = forms.CharField(
        required=False,
        max_length=OVERRIDE_REASON_MAX,
        label="Reason for confirming over the credit limit",
        help_text="Kept in the order's history and the audit trail.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["customer_search"].widget.attrs.update(
            {"autocomplete": "off", "autofocus": True, "placeholder": "Code or name…", "spellcheck": "false"}
        )
        self.fields["order_date"].widget.format = "%Y-%m-%d"

    def clean_customer_reference(self):
        return self.cleaned_data["customer_reference"].strip()


class OrderLineForm(BootstrapForm):
    """One line of the entry page. `product` is a product id picked from suggestions; the products
    of all lines are fetched in one query beforehand and handed in as `products`."""

    product = forms.CharField(required=False, widget=forms.HiddenInput)
    product_search = forms.CharField(required=False, max_length=200, label="Product")
    quantity = forms.DecimalField(
        required=False,
        max_digits=14,
        decimal_places=3,
        min_value=Decimal("0.001"),
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    unit_price = forms.DecimalField(
        required=False,
        max_digits=14,
        decimal_places=2,
        min_value=Decimal("0"),
        label="Unit price",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "placeholder": "List price"}),
    )
    discount_percent = forms.DecimalField(
        required=False,
        max_digits=5,
        decimal_places=2,
        min_value=Decimal("0"),
        max_value=Decimal("100"),
        label="Discount %",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "placeholder": "0"}),
    )

    def __init__(self, *args, products: dict[int, Product] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.products = products or {}
        self.blank = False
        self.fields["product_search"].widget.attrs.update(
            {"autocomplete": "off", "placeholder": "SKU or name…", "spellcheck": "false"}
        )

    @property
    def product_obj(self) -> Product | None:
        """The product this row names (valid or not), to show its unit and list price."""
        value = self["product"].value()
        if isinstance(value, Product):
            return value
        return self.products.get(as_id(value))

    def clean_product(self):
        value = (self.cleaned_data.get("product") or "").strip()
        if not value:
            return None
        product = self.products.get(as_id(value))
        if product is None:
            raise forms.ValidationError("This product does not exist (any more); choose another.")
        if not product.active:
            raise forms.ValidationError(f"{product.sku} is inactive and cannot be ordered.")
        return product

    def clean(self):
        data = super().clean()
        filled = [
            name
            for name in ("product", "product_search", "quantity", "unit_price", "discount_percent")
            if self.data.get(self.add_prefix(name), "").strip()
        ]
        if not filled:
            self.blank = True
            return data
        if "product" not in self.errors and data.get("product") is None:
            self.add_error("product_search", "Choose a product: type a SKU or a name and pick it from the list.")
        if "quantity" not in self.errors and data.get("quantity") is None:
            self.add_error("quantity", "Enter a quantity.")
        return data

    def line(self) -> dict:
        """The line as order_create() takes it."""
        return {
            "product": self.cleaned_data["product"],
            "quantity": self.cleaned_data["quantity"],
            "unit_price": self.cleaned_data.get("unit_price"),
            "discount_percent": self.cleaned_data.get("discount_percent") or Decimal("0"),
        }


@dataclass
class EntryRow:
    index: int
    form: OrderLineForm
    net: Decimal | None = None

    @property
    def product(self) -> Product | None:
        return self.form.product_obj


class OrderLines:
    """The lines of the entry page, read from `lines-<n>-<field>` keys. Rows are added and removed in
    the browser, so the indexes may have gaps; blank rows are ignored. All products in one query."""

    def __init__(self, data=None, *, initial: list[dict] | None = None):
        self.data = data
        if data is not None:
            indexes = sorted({int(m.group(1)) for key in data if (m := _LINE_KEY.match(key))})
            self.too_many = len(indexes) > MAX_LINES
            indexes = indexes[: MAX_LINES + 1]
            ids = {data.get(f"lines-{i}-product", "").strip() for i in indexes}
            products = _products({pk for v in ids if (pk := as_id(v)) is not None})
            self.rows = [EntryRow(i, OrderLineForm(data, prefix=f"lines-{i}", products=products)) for i in indexes]
        else:
            self.too_many = False
            self.initial = initial or [{}]
            products = {line["product"].pk: line["product"] for line in self.initial if line.get("product")}
            self.rows = [
                EntryRow(i, OrderLineForm(initial=_initial(line), prefix=f"lines-{i}", products=products))
                for i, line in enumerate(self.initial)
            ]

    @property
    def next_index(self) -> int:
        return max((row.index for row in self.rows), default=-1) + 1

    def is_valid(self) -> bool:
        valid = [row.form.is_valid() for row in self.rows]
        return all(valid) and not self.too_many

    def lines(self) -> list[dict]:
        """The filled-in lines of a valid form, in screen order."""
        return [row.form.line() for row in self.rows if not row.form.blank]

    def valid_lines(self) -> list[tuple[EntryRow, dict]]:
        """For the live totals: the rows that make a complete line so far, whatever the others hold."""
        if self.data is None:
            return [
                (row, {"discount_percent": Decimal("0"), "unit_price": None, **line})
                for row, line in zip(self.rows, self.initial, strict=True)
                if line.get("product") and line.get("quantity")
            ]
        found = []
        for row in self.rows:
            if row.form.is_valid() and not row.form.blank:
                found.append((row, row.form.line()))
        return found

    def error_count(self) -> int:
        return sum(1 for row in self.rows if row.form.errors)


def _products(ids: set[int]) -> dict[int, Product]:
    return Product.objects.select_related("tax_rate").in_bulk(ids) if ids else {}


def _initial(line: dict) -> dict:
    product = line.get("product")
    if product is None:
        return {}
    return {
        "product": product.pk,
        "product_search": product_label(product),
        "quantity": _plain(line.get("quantity")),
        "unit_price": None if line.get("unit_price") is None else str(line["unit_price"]),
        "discount_percent": _plain(line.get("discount_percent") or None),
    }


def _plain(value: Decimal | None) -> str | None:
    """2.500 -> "2.5", 10.00 -> "10": what a clerk would have typed."""
    if value is None:
        return None
    text = f"{Decimal(value):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


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


class CreditOverrideForm(BootstrapForm):
    reason = forms.CharField(
        max_length=OVERRIDE_REASON_MAX,
        label="Reason",
        help_text="Why this order may go over the limit. Kept in the order's history and the audit trail.",
        error_messages={"required": "Give the reason for confirming over the credit limit."},
    )

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("Give the reason for confirming over the credit limit.")
        return reason


# --- Products ----------------------------------------------------------------------------------


class ProductListFilter(ListFilter):
    status = forms.ChoiceField(
        required=False, choices=[("", "Active and inactive"), ("active", "Active"), ("inactive", "Inactive")]
    )
    tax_rate = forms.ModelChoiceField(queryset=TaxRate.objects.none(), required=False, empty_label="Any tax rate")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tax_rate"].queryset = TaxRate.objects.order_by("-rate", "name")


class ProductForm(BootstrapModelForm):
    """A catalogue product. Saving goes through orders.services, not ModelForm.save()."""

    class Meta:
        model = Product
        fields = ["sku", "name", "description", "unit", "unit_price", "tax_rate", "active"]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 3}),
            "unit_price": forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
        }
        help_texts = {
            "sku": "Unique; what clerks type to find the product.",
            "unit_price": "List price before tax, in the customer's currency.",
            "active": "Inactive products stay on past orders but cannot be ordered.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["sku"].widget.attrs.update({"autofocus": True, "autocomplete": "off", "spellcheck": "false"})
        current = self.instance.tax_rate_id if self.instance.pk else None
        self.fields["tax_rate"].queryset = TaxRate.objects.filter(Q(active=True) | Q(pk=current))
        self.fields["tax_rate"].empty_label = "Choose a tax rate…"

    def clean_sku(self):
        sku = self.cleaned_data["sku"].strip()
        if not sku:
            raise forms.ValidationError("Enter a SKU.")
        if any(c.isspace() for c in sku):
            raise forms.ValidationError("A SKU has no spaces: clerks type it to find the product.")
        return sku

    def clean_unit(self):
        return self.cleaned_data["unit"].strip()


# --- CSV import --------------------------------------------------------------------------------


class OrderImportForm(BootstrapForm):
    file = forms.FileField(
        label="CSV file",
        help_text="UTF-8 (or Windows-1252), comma or semicolon separated, with the header row below.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )
