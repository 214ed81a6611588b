"""REST API for billing master data: tax rates, payment terms and customers.

Also the few API pieces every app shares (apps depend downward, so they live in the lowest one):
the error shape for the schema, model validation for plain master data, ISO code fields.
"""

import copy

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, viewsets
from rest_framework.settings import api_settings

from . import services
from .models import (
    BillingCycle,
    BillingMethod,
    Contact,
    Customer,
    PaymentCycle,
    PaymentMethod,
    PaymentTerms,
    TaxRate,
)

# --- Shared pieces -----------------------------------------------------------------------------


class ErrorSerializer(serializers.Serializer):
    """The one JSON error shape (see otc.api.exception_handler); documented in the schema."""

    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.DictField()


ERRORS = {400: ErrorSerializer, 404: ErrorSerializer}
ACTION_ERRORS = {400: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer}


class UpperCodeField(serializers.RegexField):
    """An ISO code (currency, country), accepted in any case and stored upper-case."""

    def __init__(self, length: int, **kwargs):
        super().__init__(rf"^[A-Za-z]{{{length}}}$", max_length=length, **kwargs)
        self.error_messages["invalid"] = f"Enter a {length}-letter ISO code."

    def to_internal_value(self, data):
        return super().to_internal_value(data).upper()


class ModelCleanSerializer(serializers.ModelSerializer):
    """For master data without a service: run the model's own validation (field validators and
    check constraints) so a row the database would refuse comes back as a 400 with details."""

    def validate(self, attrs):
        attrs = super().validate(attrs)
        instance = copy.copy(self.instance) if self.instance is not None else self.Meta.model()
        for name, value in attrs.items():
            setattr(instance, name, value)
        try:
            # Uniqueness is checked by the serializer's own validators.
            instance.full_clean(validate_unique=False)
        except DjangoValidationError as exc:
            errors = exc.message_dict if hasattr(exc, "error_dict") else {NON_FIELD_ERRORS: exc.messages}
            if NON_FIELD_ERRORS in errors:
                errors[api_settings.NON_FIELD_ERRORS_KEY] = errors.pop(NON_FIELD_ERRORS)
            raise serializers.ValidationError(errors) from exc
        return attrs


def actor(serializer: serializers.Serializer):
    request = serializer.context.get("request")
    return getattr(request, "user", None)


# --- Tax rates ---------------------------------------------------------------------------------


class TaxRateSerializer(ModelCleanSerializer):
    class Meta:
        model = TaxRate
        fields = ["id", "name", "rate", "category", "legal_note", "active"]

    def validate(self, attrs):
        category = attrs.get("category", getattr(self.instance, "category", "standard"))
        rate = attrs.get("rate", getattr(self.instance, "rate", None))
        # Mirrors the check constraint taxrate_zero_categories_have_no_rate, to name the field.
        if category in ("zero", "exempt", "reverse_charge") and rate not in (None, 0):
            raise serializers.ValidationError({"rate": [f"A {category.replace('_', ' ')} rate must be 0.00."]})
        return super().validate(attrs)


class TaxRateFilter(filters.FilterSet):
    class Meta:
        model = TaxRate
        fields = ["category", "active"]


@extend_schema_view(
    list=extend_schema(summary="List tax rates"),
    create=extend_schema(summary="Create a tax rate", responses={201: TaxRateSerializer, **ERRORS}),
    update=extend_schema(responses={200: TaxRateSerializer, **ERRORS}),
    partial_update=extend_schema(responses={200: TaxRateSerializer, **ERRORS}),
)
@extend_schema(tags=["tax-rates"])
class TaxRateViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Tax rates. Not deletable: products and orders point at them; set `active` to false instead."""

    queryset = TaxRate.objects.all()
    serializer_class = TaxRateSerializer
    filterset_class = TaxRateFilter
    search_fields = ["name"]
    ordering_fields = ["id", "name", "rate"]


# --- Payment terms -----------------------------------------------------------------------------


# Its own enum id, so the schema names this list's choice set once (AcceptedMethodsEnum) instead of
# warning that the payment method choices also go by MethodEnum on payments.
@extend_schema_field({"type": "string", "enum": PaymentMethod.values, "x-spec-enum-id": "accepted-methods"})
class AcceptedMethodField(serializers.ChoiceField):
    def __init__(self, **kwargs):
        super().__init__(choices=PaymentMethod.choices, **kwargs)


class PaymentTermsSerializer(ModelCleanSerializer):
    accepted_methods = serializers.ListField(
        child=AcceptedMethodField(),
        allow_empty=False,
        required=False,
        help_text="Payment method codes the customer may use; all of them when left out.",
    )
    payment_cycle = serializers.ChoiceField(choices=PaymentCycle.choices, required=False)
    text = serializers.CharField(read_only=True, help_text="The terms as printed on invoices.")

    class Meta:
        model = PaymentTerms
        fields = [
            "id",
            "name",
            "due_days",
            "end_of_month",
            "discount_percent",
            "discount_days",
            "payment_cycle",
            "accepted_methods",
            "grace_days",
            "annual_interest_rate",
            "fixed_fee",
            "penalty_cap_percent",
            "text",
        ]
        extra_kwargs = {
            "penalty_cap_percent": {"allow_null": True},
            "fixed_fee": {"min_value": 0},
        }

    def validate_accepted_methods(self, value):
        return list(dict.fromkeys(value))  # drop repeats, keep the order given


@extend_schema_view(
    create=extend_schema(responses={201: PaymentTermsSerializer, **ERRORS}),
    update=extend_schema(responses={200: PaymentTermsSerializer, **ERRORS}),
    partial_update=extend_schema(responses={200: PaymentTermsSerializer, **ERRORS}),
)
@extend_schema(tags=["payment-terms"])
class PaymentTermsViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Payment terms and their late-payment policy. Issued invoices keep the terms they were issued on."""

    queryset = PaymentTerms.objects.all()
    serializer_class = PaymentTermsSerializer
    filterset_fields = ["due_days", "payment_cycle", "end_of_month"]
    search_fields = ["name"]
    ordering_fields = ["id", "name", "due_days"]


# --- Customers ---------------------------------------------------------------------------------


class AddressSerializer(serializers.Serializer):
    line1 = serializers.CharField(source="billing_line1", max_length=200, required=False, allow_blank=True)
    line2 = serializers.CharField(source="billing_line2", max_length=200, required=False, allow_blank=True)
    city = serializers.CharField(source="billing_city", max_length=100, required=False, allow_blank=True)
    postal_code = serializers.CharField(source="billing_postal_code", max_length=20, required=False, allow_blank=True)
    region = serializers.CharField(source="billing_region", max_length=100, required=False, allow_blank=True)
    country = UpperCodeField(2, source="billing_country", required=False, allow_blank=True)


class ShippingAddressSerializer(serializers.Serializer):
    line1 = serializers.CharField(source="shipping_line1", max_length=200, required=False, allow_blank=True)
    line2 = serializers.CharField(source="shipping_line2", max_length=200, required=False, allow_blank=True)
    city = serializers.CharField(source="shipping_city", max_length=100, required=False, allow_blank=True)
    postal_code = serializers.CharField(source="shipping_postal_code", max_length=20, required=False, allow_blank=True)
    region = serializers.CharField(source="shipping_region", max_length=100, required=False, allow_blank=True)
    country = UpperCodeField(2, source="shipping_country", required=False, allow_blank=True)


class ContactSerializer(serializers.ModelSerializer):
    id = serializers.IntegerField(
        required=False, help_text="Keeps (and updates) that contact; rows without an id are added."
    )

    class Meta:
        model = Contact
        fields = ["id", "name", "role", "email", "phone", "receives_invoices"]

    def validate(self, attrs):
        contact = Contact(**{k: v for k, v in attrs.items() if k != "id"})
        try:
            contact.clean()
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc
        return attrs


# Model field -> where the API shows it, for errors found by the model's own validation.
_NESTED = {
    **{f"billing_{part}": ("billing_address", part) for part in AddressSerializer().fields},
    **{f"shipping_{part}": ("shipping_address", part) for part in ShippingAddressSerializer().fields},
}


def _api_errors(errors: dict[str, list[str]]) -> dict:
    """The model's validation errors under the API's field names (addresses nested)."""
    shaped: dict = {}
    for name, messages in errors.items():
        if name in _NESTED:
            group, part = _NESTED[name]
            shaped.setdefault(group, {})[part] = messages
        elif name == NON_FIELD_ERRORS:
            shaped[api_settings.NON_FIELD_ERRORS_KEY] = messages
        else:
            shaped[name] = messages
    return shaped


class CustomerSerializer(serializers.ModelSerializer):
    currency = UpperCodeField(3, help_text="ISO 4217 code, e.g. EUR.")
    tax_id = serializers.CharField(
        max_length=40,
        required=False,
        allow_blank=True,
        help_text="Checked against the billing country (EU and UK VAT numbers, US EIN, ...) and stored compact.",
    )
    billing_method = serializers.ChoiceField(choices=BillingMethod.choices, required=False)
    billing_cycle = serializers.ChoiceField(choices=BillingCycle.choices, required=False)
    billing_address = AddressSerializer(source="*", required=False)
    shipping_same_as_billing = serializers.BooleanField(
        required=False,
        help_text="True (the default) ships to the billing address; sending a shipping_address without it sets it "
        "to false.",
    )
    shipping_address = ShippingAddressSerializer(
        source="*", required=False, help_text="Where goods go; the billing address when shipping_same_as_billing."
    )
    contacts = ContactSerializer(
        many=True,
        required=False,
        help_text="When sent, the customer's contacts become this list: rows with an id update that contact, rows "
        "without one are added, contacts left out are removed.",
    )

    class Meta:
        model = Customer
        fields = [
            "id",
            "code",
            "name",
            "legal_name",
            "email",
            "phone",
            "tax_id",
            "iban",
            "currency",
            "payment_terms",
            "billing_method",
            "billing_cycle",
            "credit_limit",
            "on_hold",
            "on_hold_reason",
            "billing_address",
            "shipping_same_as_billing",
            "shipping_address",
            "contacts",
        ]
        extra_kwargs = {
            "email": {"required": True},
            "payment_terms": {"required": True},
            "credit_limit": {"allow_null": True, "min_value": 0, "help_text": "null means unlimited."},
        }

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if instance.shipping_same_as_billing:
            data["shipping_address"] = dict(data["billing_address"])
        return data

    def validate_code(self, value):
        if self.instance is not None and not value:
            raise serializers.ValidationError("A customer's code cannot be emptied.")
        return value

    def validate(self, attrs):
        on_hold = attrs.get("on_hold", getattr(self.instance, "on_hold", False))
        reason = attrs.get("on_hold_reason", getattr(self.instance, "on_hold_reason", ""))
        # The model's check constraint (customer_hold_has_reason), reported on the field to fill in.
        if on_hold and not reason:
            raise serializers.ValidationError({"on_hold_reason": ["Give a reason when the customer is on hold."]})
        sends_shipping = any(name.startswith("shipping_") and name != "shipping_same_as_billing" for name in attrs)
        if sends_shipping and "shipping_same_as_billing" not in attrs:
            attrs["shipping_same_as_billing"] = False
        # The model's own validation (tax id for the country, ISO codes, shipping address) on a copy, so
        # the errors come back as a 400 on the API's fields and nothing is saved.
        customer = copy.copy(self.instance) if self.instance is not None else Customer()
        for name, value in attrs.items():
            if name != "contacts":
                setattr(customer, name, value)
        try:
            customer.full_clean(exclude=["code"], validate_unique=False)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(_api_errors(exc.message_dict)) from exc
        attrs["tax_id"] = customer.tax_id
        return attrs

    def create(self, validated_data):
        contacts = validated_data.pop("contacts", None)
        return services.customer_create(actor=actor(self), contacts=contacts, **validated_data)

    def update(self, instance, validated_data):
        contacts = validated_data.pop("contacts", None)
        return services.customer_update(customer=instance, actor=actor(self), contacts=contacts, **validated_data)


class CustomerFilter(filters.FilterSet):
    class Meta:
        model = Customer
        fields = ["currency", "on_hold", "billing_method", "billing_cycle", "payment_terms"]


@extend_schema_view(
    create=extend_schema(responses={201: CustomerSerializer, **ERRORS}),
    update=extend_schema(responses={200: CustomerSerializer, **ERRORS}),
    partial_update=extend_schema(responses={200: CustomerSerializer, **ERRORS}),
)
@extend_schema(tags=["customers"])
class CustomerViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Customers (billing accounts). Changes go through the billing services and are audited.
    Not deletable: put a customer on hold instead."""

    queryset = Customer.objects.prefetch_related("contacts")
    serializer_class = CustomerSerializer
    filterset_class = CustomerFilter
    search_fields = ["code", "name", "legal_name", "email", "tax_id"]
    ordering_fields = ["id", "code", "name", "created_at"]
