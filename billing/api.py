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
from .models import BillingCycle, BillingMethod, Customer, PaymentCycle, PaymentMethod, PaymentTerms, TaxRate

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


class CustomerSerializer(serializers.ModelSerializer):
    currency = UpperCodeField(3, help_text="ISO 4217 code, e.g. EUR.")
    billing_method = serializers.ChoiceField(choices=BillingMethod.choices, required=False)
    billing_cycle = serializers.ChoiceField(choices=BillingCycle.choices, required=False)
    billing_address = AddressSerializer(source="*", required=False)

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
            "currency",
            "payment_terms",
            "billing_method",
            "billing_cycle",
            "credit_limit",
            "on_hold",
            "on_hold_reason",
            "billing_address",
        ]
        extra_kwargs = {
            "email": {"required": True},
            "payment_terms": {"required": True},
            "credit_limit": {"allow_null": True, "min_value": 0, "help_text": "null means unlimited."},
        }

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
        return attrs

    def create(self, validated_data):
        return services.customer_create(actor=actor(self), **validated_data)

    def update(self, instance, validated_data):
        return services.customer_update(customer=instance, actor=actor(self), **validated_data)


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

    queryset = Customer.objects.all()
    serializer_class = CustomerSerializer
    filterset_class = CustomerFilter
    search_fields = ["code", "name", "legal_name", "email", "tax_id"]
    ordering_fields = ["id", "code", "name", "created_at"]
