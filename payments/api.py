"""REST API for payments: record money received, allocate it to invoices, refund credit, reverse
a payment; the signed gateway webhook."""

import json
import time
from decimal import Decimal

from django.conf import settings
from django.db.models import F, Prefetch
from django.http import HttpResponse
from django.utils import timezone
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.api import ACTION_ERRORS, ERRORS, ErrorSerializer, UpperCodeField
from billing.models import Customer, PaymentMethod
from invoicing.models import Invoice
from otc.idempotency import IDEMPOTENCY_PARAMETER, idempotent

from . import services, webhooks
from .models import Allocation, Payment, PaymentSource, PenaltyAssessment, Refund, WebhookEventType, WebhookOutcome
from .penalties import penalty_waive
from .statements import statement_pdf


class AllocationSerializer(serializers.ModelSerializer):
    invoice_number = serializers.CharField(read_only=True)

    class Meta:
        model = Allocation
        fields = ["invoice", "invoice_number", "amount", "discount", "reversed_at"]
        read_only_fields = fields


class RefundSerializer(serializers.ModelSerializer):
    class Meta:
        model = Refund
        fields = ["id", "amount", "currency", "method", "reference", "reason", "refunded_on", "source", "created_at"]
        read_only_fields = fields


class PaymentSerializer(serializers.ModelSerializer):
    unallocated_amount = serializers.DecimalField(max_digits=14, decimal_places=2, read_only=True)
    allocations = AllocationSerializer(many=True, read_only=True)
    refunds = RefundSerializer(many=True, read_only=True)
    warnings = serializers.SerializerMethodField(
        help_text="Things to check with the customer, e.g. a method their terms do not accept."
    )

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
            "status",
            "reversed_at",
            "reversal_reason",
            "allocations",
            "refunds",
            "warnings",
            "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_warnings(self, payment: Payment) -> list[str]:
        return payment_warnings(payment)


def payment_warnings(payment: Payment) -> list[str]:
    if payment.method_accepted:
        return []
    return [
        f"{PaymentMethod(payment.method).label} is not an accepted payment method under the customer's terms. "
        "The payment is recorded; check it with the customer."
    ]


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
    match_reference = serializers.BooleanField(
        default=True,
        help_text="Without explicit allocations, when the reference names open invoices of the customer "
        "(INV-2026-000042, PEN-…; any case, spaces allowed), allocate to them in that order and keep the rest "
        "as credit. When it names none, `auto_allocate` decides.",
    )


class RefundInputSerializer(serializers.Serializer):
    amount = serializers.DecimalField(max_digits=14, decimal_places=2, min_value=Decimal("0.01"))
    reason = serializers.CharField(max_length=255)
    method = serializers.ChoiceField(
        choices=PaymentMethod.choices, required=False, help_text="Defaults to the payment's method."
    )
    reference = serializers.CharField(max_length=140, required=False, allow_blank=True)
    refunded_on = serializers.DateField(required=False, help_text="Defaults to today.")


class ReverseInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=255, help_text="Bounced check, chargeback, …")


def _allocations(data) -> list[dict] | None:
    return [{"invoice": a["invoice"], "amount": a["amount"]} for a in data.get("allocations") or []] or None


class PaymentFilter(filters.FilterSet):
    customer = filters.NumberFilter(field_name="customer_id")
    received_on = filters.DateFromToRangeFilter()

    class Meta:
        model = Payment
        fields = ["customer", "method", "currency", "source", "method_accepted", "status", "received_on"]


def payment_queryset():
    allocations = Allocation.objects.annotate(invoice_number=F("invoice__number")).order_by("id")
    return Payment.objects.prefetch_related(Prefetch("allocations", queryset=allocations), "refunds")


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
        if self.action == "refund":
            return RefundInputSerializer
        if self.action == "reverse":
            return ReverseInputSerializer
        return PaymentSerializer

    def _respond(self, payment: Payment, http_status=status.HTTP_200_OK) -> Response:
        fresh = payment_queryset().get(pk=payment.pk)
        return Response(PaymentSerializer(fresh, context=self.get_serializer_context()).data, status=http_status)

    @extend_schema(
        summary="Record a payment",
        description="All or nothing: when an allocation is refused (above an invoice's balance or what is "
        "left of the payment) nothing is saved.",
        request=PaymentCreateSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: PaymentSerializer, **ERRORS, 409: ErrorSerializer, 422: ErrorSerializer},
    )
    @idempotent
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
            match_reference=data["match_reference"],
            actor=request.user,
        )
        return self._respond(payment, status.HTTP_201_CREATED)

    @extend_schema(
        summary="Allocate what is left of a payment",
        request=AllocateSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={200: PaymentSerializer, **ACTION_ERRORS, 422: ErrorSerializer},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def allocate(self, request, pk=None):
        payment = self.get_object()
        serializer = AllocateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.payment_allocate(
            payment=payment, allocations=_allocations(serializer.validated_data), actor=request.user
        )
        return self._respond(payment)

    @extend_schema(
        summary="Refund customer credit",
        description="Pays back part or all of what is left unallocated on the payment. Refused (400) above the "
        "credit left, 409 on a reversed payment.",
        request=RefundInputSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={200: PaymentSerializer, **ACTION_ERRORS, 422: ErrorSerializer},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def refund(self, request, pk=None):
        payment = self.get_object()
        serializer = RefundInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        services.payment_refund(
            payment=payment,
            amount=data["amount"],
            reason=data["reason"],
            method=data.get("method"),
            reference=data.get("reference", ""),
            refunded_on=data.get("refunded_on"),
            source=PaymentSource.API,
            actor=request.user,
        )
        return self._respond(payment)

    @extend_schema(
        summary="Reverse a payment (bounced check, chargeback)",
        description="Its allocations stop counting (kept, marked reversed), its invoices reopen, and the payment "
        "is marked reversed. 409 when already reversed or when part of it was refunded.",
        request=ReverseInputSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={200: PaymentSerializer, **ACTION_ERRORS, 422: ErrorSerializer},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def reverse(self, request, pk=None):
        payment = self.get_object()
        serializer = ReverseInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.payment_reverse(payment=payment, reason=serializer.validated_data["reason"], actor=request.user)
        return self._respond(payment)


# --- Gateway webhooks ------------------------------------------------------------------------------


class WebhookEventSerializer(serializers.Serializer):
    """The event body a gateway posts."""

    id = serializers.CharField(max_length=100, help_text="The provider's event id; a repeat is ignored.")
    type = serializers.ChoiceField(choices=WebhookEventType.choices)
    payment = serializers.CharField(
        max_length=100, help_text="The provider's payment id (a refund event names the payment it refunds)."
    )
    amount = serializers.DecimalField(max_digits=14, decimal_places=2, min_value=Decimal("0.01"))
    currency = UpperCodeField(3)
    customer = serializers.CharField(max_length=30, required=False, allow_blank=True, help_text="Customer code.")
    reference = serializers.CharField(
        max_length=140, required=False, allow_blank=True, help_text="Invoice reference, e.g. INV-2026-000042."
    )
    method = serializers.ChoiceField(choices=PaymentMethod.choices, required=False, default=PaymentMethod.CARD)

    def validate(self, attrs):
        if attrs["type"] == WebhookEventType.PAYMENT_SUCCEEDED and not attrs.get("customer"):
            raise serializers.ValidationError({"customer": ["A payment event names the customer (its code)."]})
        return attrs


class WebhookResultSerializer(serializers.Serializer):
    event = serializers.CharField()
    duplicate = serializers.BooleanField()
    outcome = serializers.ChoiceField(choices=WebhookOutcome.choices)
    detail = serializers.CharField()
    payment = serializers.CharField(allow_null=True)


class _Reject(Exception):
    pass


def _reject_constant(name):
    raise _Reject(f"{name} is not a number JSON allows.")


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _webhook_error(code: str, message: str, http_status: int, details=None) -> Response:
    return Response({"code": code, "message": message, "details": details or {}}, status=http_status)


@extend_schema(tags=["payments"])
class GatewayWebhookView(APIView):
    """Signed notifications from a payment gateway. No user authentication: the signature is it."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(
        operation_id="payments_webhook",
        summary="Receive a payment gateway event",
        description='Header `OTC-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">` with the '
        "provider's secret (`OTC_WEBHOOK_SECRETS`), time within 300 s. 401 when the signature is missing, "
        "malformed, wrong or stale; 404 for an unknown provider; 400 for a body that is not a valid event. "
        "Nothing is stored on any of these. A stored event answers 200 with its outcome; a repeat of an "
        "event id answers 200 with `duplicate: true` and does nothing.",
        request=WebhookEventSerializer,
        responses={200: WebhookResultSerializer, 400: ErrorSerializer, 401: ErrorSerializer, 404: ErrorSerializer},
    )
    def post(self, request, provider: str):
        secret = (settings.OTC_WEBHOOK_SECRETS or {}).get(provider)
        if not secret:
            return _webhook_error("not_found", f"No webhook is set up for provider {provider[:30]!r}.", 404)
        body = request.body
        try:
            webhooks.verify_signature(
                secret=secret,
                header=request.headers.get("OTC-Signature"),
                body=body,
                now=int(time.time()),
                tolerance=settings.OTC_WEBHOOK_TOLERANCE,
            )
        except webhooks.SignatureError as e:
            return _webhook_error(e.code, e.message, 401)
        try:
            payload = json.loads(body, parse_float=Decimal, parse_constant=_reject_constant)
        except (ValueError, _Reject, RecursionError) as e:
            return _webhook_error("invalid_json", f"The body is not valid JSON: {str(e)[:200]}", 400)
        if not isinstance(payload, dict):
            return _webhook_error("invalid", "The body must be a JSON object.", 400)
        try:
            storable = not _has_nul(payload)
        except RecursionError:
            storable = False
        if not storable:
            # PostgreSQL's jsonb cannot hold a NUL character, and the payload is stored as received.
            return _webhook_error("invalid", "The body must not contain NUL characters or nest that deep.", 400)
        serializer = WebhookEventSerializer(data=payload)
        if not serializer.is_valid():
            return _webhook_error("invalid", "The event is not valid; see details.", 400, serializer.errors)
        data = serializer.validated_data
        event = webhooks.GatewayEvent(
            event_id=data["id"],
            type=data["type"],
            gateway_payment_id=data["payment"],
            amount=data["amount"],
            currency=data["currency"],
            customer=data.get("customer", ""),
            reference=data.get("reference", ""),
            method=data["method"],
        )
        stored, created = webhooks.webhook_receive(provider=provider, event=event, payload=payload)
        return Response(
            {
                "event": stored.event_id,
                "duplicate": not created,
                "outcome": stored.outcome,
                "detail": stored.detail,
                "payment": stored.payment.number if stored.payment_id else None,
            }
        )


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


class PenaltyAssessmentSerializer(serializers.ModelSerializer):
    invoice_number = serializers.CharField(source="invoice.number", read_only=True)
    penalty_invoice_number = serializers.CharField(source="penalty_invoice.number", read_only=True, default=None)
    total = serializers.DecimalField(max_digits=14, decimal_places=2, read_only=True)
    waived_by = serializers.CharField(source="waived_by.username", read_only=True, default=None)

    class Meta:
        model = PenaltyAssessment
        fields = [
            "id",
            "invoice",
            "invoice_number",
            "period_start",
            "period_end",
            "days",
            "annual_rate",
            "interest",
            "fee",
            "total",
            "capped",
            "penalty_invoice",
            "penalty_invoice_number",
            "run",
            "waived_at",
            "waived_by",
            "waive_reason",
            "created_at",
        ]
        read_only_fields = fields


class PenaltyWaiveSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=200, help_text="Printed on the credit note and kept in the audit trail.")


class PenaltyFilter(filters.FilterSet):
    invoice = filters.NumberFilter(field_name="invoice_id")
    customer = filters.NumberFilter(field_name="invoice__customer_id")
    period_end = filters.DateFromToRangeFilter()
    waived = filters.BooleanFilter(field_name="waived_at", lookup_expr="isnull", exclude=True)

    class Meta:
        model = PenaltyAssessment
        fields = ["invoice", "customer", "capped", "period_end", "waived"]


@extend_schema_view(
    list=extend_schema(summary="List late-payment penalty assessments"),
    retrieve=extend_schema(summary="Show a penalty assessment"),
)
@extend_schema(tags=["payments"])
class PenaltyAssessmentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """What each penalty run charged on an overdue invoice: the period, the days, the interest and the
    fixed fee, and the PEN invoice that bills them."""

    serializer_class = PenaltyAssessmentSerializer
    filterset_class = PenaltyFilter
    ordering_fields = ["id", "period_end", "created_at"]
    queryset = PenaltyAssessment.objects.select_related("invoice", "penalty_invoice", "waived_by").order_by("-id")

    @extend_schema(
        summary="Waive a penalty",
        description="A credit note cancels the penalty invoice; the waiver is audited. 409 when it was waived already.",
        request=PenaltyWaiveSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={200: PenaltyAssessmentSerializer, **ACTION_ERRORS, 422: ErrorSerializer},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def waive(self, request, pk=None):
        assessment = self.get_object()
        serializer = PenaltyWaiveSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        penalty_waive(assessment=assessment, reason=serializer.validated_data["reason"], actor=request.user)
        fresh = self.get_queryset().get(pk=assessment.pk)
        return Response(PenaltyAssessmentSerializer(fresh).data)


# --- Penalty runs ---------------------------------------------------------------------------------
from billing.api_runs import RunFilter, RunSerializer, RunViewSet, start_schema  # noqa: E402

from . import penalties  # noqa: E402
from .models import PenaltyRun, PenaltyRunStatus  # noqa: E402


class PenaltyRunSerializer(RunSerializer):
    class Meta:
        model = PenaltyRun
        fields = [
            *RunSerializer.COMMON,
            "total_batches",
            "processed_batches",
            "candidates",
            "assessments",
            "penalty_invoices",
            "interest_total",
            "fee_total",
        ]
        read_only_fields = fields


class PenaltyRunFilter(RunFilter):
    status = filters.MultipleChoiceFilter(choices=PenaltyRunStatus.choices)

    class Meta:
        model = PenaltyRun
        fields = ["status", "as_of"]


@extend_schema_view(
    list=extend_schema(summary="List penalty runs"),
    retrieve=extend_schema(summary="Show a penalty run and its progress"),
    create=start_schema(
        "Start a penalty run",
        "Assesses late-payment interest and fees up to the date (today or earlier) on the workers, as "
        "penalty invoices. Answers 202 with the run at once; poll it until `status` is `done`. Safe to "
        "repeat: an invoice is assessed once per period end.",
        PenaltyRunSerializer,
    ),
)
@extend_schema(tags=["penalties"])
class PenaltyRunViewSet(RunViewSet):
    """Penalty runs (daily by beat, or started here, in the UI or by `manage.py assess_penalties`)."""

    queryset = PenaltyRun.objects.select_related("started_by")
    serializer_class = PenaltyRunSerializer
    filterset_class = PenaltyRunFilter

    def start(self, *, as_of, actor):
        return penalties.run_start(as_of=as_of, actor=actor)
