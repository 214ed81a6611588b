"""Browser forms for customers, and the Bootstrap rendering shared by every app's forms."""

import re

from django import forms
from django.forms.boundfield import BoundField

from .models import Contact, Customer, PaymentTerms
from .validators import CURRENCIES


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


class RunStartForm(BootstrapForm):
    """Start a billing or penalty run as of a date. The service that starts the run refuses a date
    after today (`billing.jobs.run_as_of`); `billing.views_runs` shows that refusal on the field.
    Subclasses set the field's `label` and `help_text`."""

    label = ""
    help_text = ""
    as_of = forms.DateField(
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        input_formats=["%Y-%m-%d"],
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["as_of"].label = self.label
        self.fields["as_of"].help_text = self.help_text


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
        if value and value not in CURRENCIES:
            raise forms.ValidationError(f"{value} is not an ISO 4217 currency code; use e.g. EUR, USD or GBP.")
        return value


COUNTRY_WIDGET = {"class": "text-uppercase", "style": "width:5rem", "maxlength": 2, "autocapitalize": "characters"}


class CustomerForm(BootstrapModelForm):
    """Master data of a billing account. Saving goes through billing.services, not ModelForm.save();
    the model's own validation (tax id for the country, shipping address, hold reason) runs here too,
    so its errors show on their fields."""

    currency = CurrencyField(initial=Customer._meta.get_field("currency").default)
    # Asked the other way round from the model's shipping_same_as_billing, so that a post without the
    # box (a script, an older form) keeps the safe default: goods go to the billing address.
    ship_elsewhere = forms.BooleanField(
        required=False,
        label="Ship to a different address",
        help_text="Leave unticked to deliver to the billing address.",
    )

    class Meta:
        model = Customer
        fields = [
            "name",
            "code",
            "legal_name",
            "tax_id",
            "email",
            "phone",
            "iban",
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
            "shipping_line1",
            "shipping_line2",
            "shipping_postal_code",
            "shipping_city",
            "shipping_region",
            "shipping_country",
            "notes",
        ]
        widgets = {
            "notes": forms.Textarea(attrs={"rows": 3}),
            "billing_country": forms.TextInput(attrs=COUNTRY_WIDGET),
            "shipping_country": forms.TextInput(attrs=COUNTRY_WIDGET),
        }
        labels = {
            "shipping_line1": "Shipping line 1",
            "shipping_line2": "Shipping line 2",
            "shipping_city": "Shipping city",
            "shipping_postal_code": "Shipping postal code",
            "shipping_region": "Shipping region",
            "shipping_country": "Shipping country",
        }
        help_texts = {
            "legal_name": "Printed on invoices; the name is used when empty.",
            "tax_id": "Checked against the billing country (VAT number in the EU and the UK, EIN in the US).",
            "on_hold": "Orders of a customer on hold cannot be confirmed.",
            "on_hold_reason": "Required when the customer is on hold.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["name"].widget.attrs["autofocus"] = True
        self.fields["payment_terms"].queryset = PaymentTerms.objects.order_by("name")
        self.fields["payment_terms"].empty_label = "Choose payment terms…"
        self.fields["credit_limit"].widget.attrs.update({"min": "0", "step": "0.01"})
        self.fields["ship_elsewhere"].initial = not self.instance.shipping_same_as_billing
        if self.instance.pk:
            # The code identifies the customer on issued invoices and in integrations: it stays.
            del self.fields["code"]

    def clean_billing_country(self):
        return (self.cleaned_data.get("billing_country") or "").strip().upper()

    def clean_shipping_country(self):
        return (self.cleaned_data.get("shipping_country") or "").strip().upper()

    def clean(self):
        cleaned = super().clean()
        # Before the model's validation (which runs next, on the instance): it needs the answer.
        self.instance.shipping_same_as_billing = not cleaned.pop("ship_elsewhere", False)
        cleaned["shipping_same_as_billing"] = self.instance.shipping_same_as_billing
        return cleaned

    def focus_first_error(self) -> None:
        """After a refused post, the cursor goes to the first field to fix rather than to the name."""
        invalid = [name for name in self.fields if name in self.errors]
        if invalid:
            self.fields["name"].widget.attrs.pop("autofocus", None)
            self.fields[invalid[0]].widget.attrs["autofocus"] = True

    @property
    def ships_elsewhere(self) -> bool:
        """Whether the shipping address fields are shown: the box is ticked (as posted, or as stored)."""
        return bool(self["ship_elsewhere"].value())


class ContactForm(BootstrapModelForm):
    """One row of the contacts table on the customer form. `id` names an existing contact."""

    id = forms.IntegerField(required=False, widget=forms.HiddenInput)

    class Meta:
        model = Contact
        fields = ["name", "role", "email", "phone", "receives_invoices"]
        labels = {"email": "E-mail", "receives_invoices": "Receives invoices"}


class BaseContactFormSet(forms.BaseFormSet):
    def contact_rows(self) -> list[dict]:
        """The contacts to keep, as billing.services takes them: the rows neither empty nor removed."""
        rows = []
        for form in self.kept_forms():
            data = {name: form.cleaned_data.get(name) for name in ContactForm._meta.fields}
            data["email"] = data["email"] or ""
            if form.cleaned_data.get("id"):
                data["id"] = form.cleaned_data["id"]
            rows.append(data)
        return rows

    def kept_forms(self) -> list[ContactForm]:
        return [
            form
            for form in self.forms
            if form.has_changed() or form.cleaned_data.get("id")
            if not self._should_delete_form(form)
        ]

    def add_service_errors(self, errors: list[dict]) -> None:
        """Show a refused contact list's errors (one dict per kept row, in order) on their rows."""
        for form, row_errors in zip(self.kept_forms(), errors, strict=False):
            for field, messages in (row_errors or {}).items():
                form.add_error(field if field in form.fields and field != "id" else None, messages)


CONTACTS_PREFIX = "contacts"
_FORMSET = {"formset": BaseContactFormSet, "can_delete": True, "max_num": 50, "validate_max": True}
ContactFormSet = forms.formset_factory(ContactForm, extra=0, **_FORMSET)
NewContactFormSet = forms.formset_factory(ContactForm, extra=1, **_FORMSET)


def contact_formset(data=None, *, customer: Customer | None = None) -> BaseContactFormSet:
    """The contacts table of the customer form: the customer's contacts, or one empty row to start."""
    initial = [
        {"id": c.pk, **{name: getattr(c, name) for name in ContactForm._meta.fields}}
        for c in (customer.contacts.all() if customer is not None else [])
    ]
    formset_class = ContactFormSet if initial else NewContactFormSet
    return formset_class(data, initial=initial, prefix=CONTACTS_PREFIX)


class CustomerNotesForm(BootstrapForm):
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4}), label="Notes", max_length=10_000)


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
