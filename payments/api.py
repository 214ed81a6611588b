"""REST API for payments: record money received and allocate it to invoices."""

from decimal import Decimal

from django.db.models import F, Prefetch
from django.http import HttpResponse
from django.utils import timezone
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.api import ACTION_ERRORS, ERRORS, UpperCodeField
from billing.models import Customer, PaymentMethod
from invoicing.models import Invoice

from . import services
from .models import Allocation, Payment, PaymentSource
from .statements import statement_pdf


class AllocationSerializer(serializers.ModelSerializer):
    invoice_number = serializers.CharField(read_only=True)

    class Meta:
        model = Allocation
        fields = ["invoice", "invoice_number", "amount"]
        read_only_fields = fields


class PaymentSerializer(serializers.ModelSerializer):
    unallocated_amount = serializers.DecimalField(max_digits=14, decimal_places=2, read_only=True)
    allocations = AllocationSerializer(many=True, read_only=True)

    class Meta:
        model = Payment
        fields = [
            "id",
            "number",
            "customer",
            "method",
            "method_accepted",
            "amount",
            "currency",
            "received_on",
            "reference",
            "source",
            "allocated_amount",
            "refunded_amount",
            "unallocated_amount",
            "allocations",
            "created_at",
        ]
        read_only_fields = fields


class AllocationInputSerializer(serializers.Serializer):
    invoice = serializers.PrimaryKeyRelatedField(queryset=Invoice.objects.all())
    amount = serializers.DecimalField(max_digits=14, decimal_places=2, min_value=Decimal("0.01"))


class AllocateSerializer(serializers.Serializer):
    allocations = AllocationInputSerializer(
        many=True,
        required=False,
        max_length=1000,
        help_text="Which invoices to pay and how much. Left out or empty: the customer's open invoices, "
        "oldest due first.",
    )


class PaymentCreateSerializer(AllocateSerializer):
    customer = serializers.PrimaryKeyRelatedField(queryset=Customer.objects.select_related("payment_terms"))
    method = serializers.ChoiceField(choices=PaymentMethod.choices)
    amount = serializers.DecimalField(max_digits=14, decimal_places=2, min_value=Decimal("0.01"))
    currency = UpperCodeField(3, required=False, help_text="Defaults to the customer's currency.")
    received_on = serializers.DateField(required=False, help_text="Defaults to today.")
    reference = serializers.CharField(max_length=140, required=False, allow_blank=True)
    auto_allocate = serializers.BooleanField(
        default=True,
        help_text="Without explicit allocations, allocate to open invoices oldest due first; "
        "false keeps the whole amount as customer credit.",
    )


def _allocations(data) -> list[dict] | None:
    return [{"invoice": a["invoice"], "amount": a["amount"]} for a in data.get("allocations") or []] or None


class PaymentFilter(filters.FilterSet):
    customer = filters.NumberFilter(field_name="customer_id")
    received_on = filters.DateFromToRangeFilter()

    class Meta:
        model = Payment
        fields = ["customer", "method", "currency", "source", "method_accepted", "received_on"]


def payment_queryset():
    allocations = Allocation.objects.annotate(invoice_number=F("invoice__number")).order_by("id")
    return Payment.objects.prefetch_related(Prefetch("allocations", queryset=allocations))


@extend_schema_view(
    list=extend_schema(summary="List payments"),
    retrieve=extend_schema(summary="Show a payment with its allocations"),
)
@extend_schema(tags=["payments"])
class PaymentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Payments received. What is not allocated stays on the payment as customer credit."""

    serializer_class = PaymentSerializer
    filterset_class = PaymentFilter
    search_fields = ["number", "reference"]
    ordering_fields = ["id", "number", "received_on", "amount"]

    def get_queryset(self):
        return payment_queryset() if self.action in ("list", "retrieve") else Payment.objects.all()

    def get_serializer_class(self):
        if self.action == "create":
            return PaymentCreateSerializer
        if self.action == "allocate":
            return AllocateSerializer
        return PaymentSerializer

    def _respond(self, payment: Payment, http_status=status.HTTP_200_OK) -> Response:
        fresh = payment_queryset().get(pk=payment.pk)
        return Response(PaymentSerializer(fresh, context=self.get_serializer_context()).data, status=http_status)

    @extend_schema(
        summary="Record a payment",
        description="All or nothing: when an allocation is refused (above an invoice's balance or what is "
        "left of the payment) nothing is saved.",
        request=PaymentCreateSerializer,
        responses={201: PaymentSerializer, **ERRORS},
    )
    def create(self, request, *args, **kwargs):
        serializer = PaymentCreateSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        customer = data["customer"]
        payment = services.payment_record(
            customer=customer,
            method=data["method"],
            amount=data["amount"],
            currency=data.get("currency") or customer.currency,
            received_on=data.get("received_on"),
            reference=data.get("reference", ""),
            source=PaymentSource.API,
            allocations=_allocations(data),
            auto_allocate=data["auto_allocate"],
            actor=request.user,
        )
        return self._respond(payment, status.HTTP_201_CREATED)

    @extend_schema(
        summary="Allocate what is left of a payment",
        request=AllocateSerializer,
        responses={200: PaymentSerializer, **ACTION_ERRORS},
    )
    @action(detail=True, methods=["post"])
    def allocate(self, request, pk=None):
        payment = self.get_object()
        serializer = AllocateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.payment_allocate(
            payment=payment, allocations=_allocations(serializer.validated_data), actor=request.user
        )
        return self._respond(payment)


# --- Customer statements -------------------------------------------------------------------------


class StatementQuerySerializer(serializers.Serializer):
    as_of = serializers.DateField(required=False, help_text="The date the statement is made up to; defaults to today.")

    def validate_as_of(self, value):
        if value.year < 1900:
            raise serializers.ValidationError("Give a date from 1900 on.")
        return value


@extend_schema(tags=["customers"])
class CustomerStatementView(APIView):
    """A customer's statement of account as a PDF. (Registered beside the customer routes; it lives
    here because it shows unapplied credit, which belongs to payments.)"""

    def perform_content_negotiation(self, request, force=False):
        # The PDF is a plain response; let `Accept: application/pdf` through, errors stay JSON.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        operation_id="customers_statement",
        summary="Download a customer's statement of account",
        description="Open invoices and penalty invoices with their balances and days overdue as of the date, "
        "aging (current, 1-30, 31-60, 61-90, over 90 days), unapplied credit (payments and credit notes) and "
        "the net balance. Balances are the current ones; documents dated after `as_of` are left out.",
        parameters=[
            OpenApiParameter("customer_id", int, OpenApiParameter.PATH, description="The customer's id."),
            OpenApiParameter("as_of", OpenApiTypes.DATE, description="YYYY-MM-DD; defaults to today."),
        ],
        responses={
            (200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY, description="The statement PDF."),
            **ERRORS,
        },
    )
    def get(self, request, customer_id: str):
        customer = Customer.objects.filter(pk=int(customer_id)).first() if customer_id.isdigit() else None
        if customer is None:
            raise NotFound()
        query = StatementQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        as_of = query.validated_data.get("as_of") or timezone.localdate()
        data = statement_pdf(customer, as_of)
        return HttpResponse(
            data,
            content_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="statement-{customer.code}-{as_of:%Y-%m-%d}.pdf"'},
        )
