"""REST API for invoices: list, show, issue, void, credit, download the PDF; and POST /orders/{id}/invoice/."""

from decimal import Decimal

from django.http import FileResponse, HttpResponse
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from billing.api import ACTION_ERRORS, ErrorSerializer
from billing.errors import Conflict, InvalidTransition
from orders import api as orders_api
from otc.idempotency import IDEMPOTENCY_PARAMETER, idempotent

from . import einvoice, services
from .api_delivery import InvoiceDeliverySerializer
from .delivery import invoice_resend
from .models import Invoice, InvoiceKind, InvoiceLine, InvoiceStatus, PdfStatus


class InvoiceLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = InvoiceLine
        fields = [
            "id",
            "position",
            "order_line",
            "credited_line",
            "order_number",
            "order_date",
            "customer_reference",
            "sku",
            "description",
            "quantity",
            "unit",
            "unit_price",
            "discount_percent",
            "tax_percent",
            "tax_category",
            "tax_note",
            "net_amount",
        ]
        read_only_fields = fields


class TaxBreakdownSerializer(serializers.Serializer):
    rate = serializers.DecimalField(max_digits=5, decimal_places=2)
    category = serializers.CharField()
    taxable = serializers.DecimalField(max_digits=14, decimal_places=2)
    tax = serializers.DecimalField(max_digits=14, decimal_places=2)


class InvoiceSerializer(serializers.ModelSerializer):
    balance = serializers.DecimalField(max_digits=14, decimal_places=2, read_only=True)
    lines = InvoiceLineSerializer(many=True, read_only=True)
    tax_breakdown = TaxBreakdownSerializer(many=True, read_only=True)
    customer_snapshot = serializers.DictField(
        read_only=True, help_text="The customer's details frozen at issue (empty on drafts)."
    )

    class Meta:
        model = Invoice
        fields = [
            "id",
            "number",
            "kind",
            "status",
            "customer",
            "issue_date",
            "due_date",
            "currency",
            "net_total",
            "tax_total",
            "gross_total",
            "amount_paid",
            "balance",
            "original",
            "voided_at",
            "void_reason",
            "credit_reason",
            "pdf_status",
            "delivery_status",
            "delivered_at",
            "tax_breakdown",
            "customer_snapshot",
            "lines",
        ]
        read_only_fields = fields


class InvoiceVoidSerializer(serializers.Serializer):
    reason = serializers.CharField(
        max_length=255, help_text="Why the invoice is void (kept on it and in the audit trail)."
    )


class CreditLineSerializer(serializers.Serializer):
    line = serializers.IntegerField(help_text="Id of a line of the invoice being credited.")
    quantity = serializers.DecimalField(max_digits=12, decimal_places=3, min_value=Decimal("0.001"))


class CreditNoteCreateSerializer(serializers.Serializer):
    """Give `lines` to credit chosen lines and quantities, or `amount` (net, with `tax_percent` when
    the invoice has several rates) to credit an amount; neither credits what is left in full."""

    reason = serializers.CharField(max_length=255)
    lines = CreditLineSerializer(many=True, required=False, allow_empty=False)
    amount = serializers.DecimalField(max_digits=14, decimal_places=2, min_value=Decimal("0.01"), required=False)
    tax_percent = serializers.DecimalField(max_digits=5, decimal_places=2, min_value=Decimal("0"), required=False)

    def validate(self, attrs):
        if "lines" in attrs and "amount" in attrs:
            raise serializers.ValidationError({"amount": ["Credit either lines or an amount, not both."]})
        if "tax_percent" in attrs and "amount" not in attrs:
            raise serializers.ValidationError({"tax_percent": ["Only with an amount."]})
        ids = [spec["line"] for spec in attrs.get("lines", [])]
        if len(ids) != len(set(ids)):
            raise serializers.ValidationError({"lines": ["Each line at most once."]})
        return attrs


class CreditApplySerializer(serializers.Serializer):
    invoice = serializers.IntegerField(min_value=1, help_text="The open invoice (or penalty invoice) to settle.")
    amount = serializers.DecimalField(
        max_digits=14,
        decimal_places=2,
        min_value=Decimal("0.01"),
        required=False,
        help_text="Defaults to as much as the credit left and the invoice's balance allow.",
    )


class InvoiceFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=InvoiceStatus.choices)
    kind = filters.ChoiceFilter(choices=InvoiceKind.choices)
    customer = filters.NumberFilter(field_name="customer_id")
    issue_date = filters.DateFromToRangeFilter()
    due_date = filters.DateFromToRangeFilter()

    class Meta:
        model = Invoice
        fields = ["status", "kind", "customer", "currency", "issue_date", "due_date"]


# Actions answering with a file rather than JSON (their errors are still JSON).
FILE_ACTIONS = ("pdf", "ubl", "facturx")


def invoice_queryset():
    return Invoice.objects.prefetch_related("lines")


@extend_schema_view(
    list=extend_schema(summary="List invoices, credit notes and penalty invoices"),
    retrieve=extend_schema(summary="Show an invoice with its lines"),
)
@extend_schema(tags=["invoices"])
class InvoiceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Invoices. Drafts come from POST /orders/{id}/invoice/ (or a billing run); issue them here."""

    serializer_class = InvoiceSerializer
    filterset_class = InvoiceFilter
    search_fields = ["number"]
    ordering_fields = ["id", "number", "issue_date", "due_date", "gross_total"]

    def get_queryset(self):
        return invoice_queryset() if self.action in ("list", "retrieve") else Invoice.objects.all()

    def perform_content_negotiation(self, request, force=False):
        # The PDF is a plain file response; let `Accept: application/pdf` through to it, and render
        # its errors as JSON rather than refusing the request with a 406.
        return super().perform_content_negotiation(request, force=force or self.action in FILE_ACTIONS)

    @extend_schema(
        summary="Issue a draft invoice",
        description="Gives the next gapless number, the due date from the terms and freezes the document. "
        "The PDF is rendered afterwards by a worker (see `pdf_status`).",
        request=None,
        responses={200: InvoiceSerializer, **ACTION_ERRORS},
    )
    @action(detail=True, methods=["post"])
    def issue(self, request, pk=None):
        invoice = services.invoice_issue(invoice=self.get_object(), actor=request.user)
        fresh = invoice_queryset().get(pk=invoice.pk)
        return Response(InvoiceSerializer(fresh, context=self.get_serializer_context()).data)

    @extend_schema(
        summary="Void an invoice",
        description="A draft: its orders can be invoiced again. An issued invoice only when nothing settles it "
        "(no payment allocated, no credit note, no penalty) and the customer never received it (not e-mailed, "
        "printed or posted): it keeps its number (the series stays gapless) and its content, its orders return "
        "to `fulfilled` to be billed again, and it is never sent. Otherwise 409: correct it with a credit note "
        "(`POST /invoices/{id}/credit/`).",
        request=InvoiceVoidSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={200: InvoiceSerializer, **orders_api.IDEMPOTENT_ACTION_ERRORS},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def void(self, request, pk=None):
        invoice = self.get_object()
        serializer = InvoiceVoidSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        invoice = services.invoice_void(invoice=invoice, actor=request.user, reason=serializer.validated_data["reason"])
        fresh = invoice_queryset().get(pk=invoice.pk)
        return Response(InvoiceSerializer(fresh, context=self.get_serializer_context()).data)

    @extend_schema(
        summary="Correct an issued invoice with a credit note",
        description="Issues a credit note (series `CN`) at once: in full (what is left of every line), for chosen "
        "`lines` and quantities, or for a net `amount` at one of the invoice's tax rates. It is applied to the "
        "invoice's balance; what the balance cannot take stays on the credit note as customer credit. Never more "
        "than is left on a line or a rate. Answers 201 with the credit note.",
        request=CreditNoteCreateSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: InvoiceSerializer, **orders_api.IDEMPOTENT_ACTION_ERRORS},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def credit(self, request, pk=None):
        invoice = self.get_object()
        serializer = CreditNoteCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        lines = None
        if "lines" in data:
            known = {line.pk: line for line in invoice.lines.all()}
            unknown = [spec["line"] for spec in data["lines"] if spec["line"] not in known]
            if unknown:
                raise serializers.ValidationError({"lines": [f"Not a line of {invoice}: {unknown}."]})
            lines = [{"line": known[spec["line"]], "quantity": spec["quantity"]} for spec in data["lines"]]
        note = services.invoice_credit(
            invoice=invoice,
            reason=data["reason"],
            lines=lines,
            amount=data.get("amount"),
            tax_percent=data.get("tax_percent"),
            actor=request.user,
        )
        fresh = invoice_queryset().get(pk=note.pk)
        return Response(
            InvoiceSerializer(fresh, context=self.get_serializer_context()).data, status=status.HTTP_201_CREATED
        )

    @extend_schema(
        summary="Apply a credit note's credit to another invoice",
        description="On a credit note with credit left (what its original invoice's balance could not take): "
        "settle an open invoice or penalty invoice of the same customer and currency with it, by `amount` or, "
        "without one, as much as both allow. 400 above the credit left or the invoice's balance; 409 when "
        "nothing is left. Answers with the credit note.",
        request=CreditApplySerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={200: InvoiceSerializer, **orders_api.IDEMPOTENT_ACTION_ERRORS},
    )
    @action(detail=True, methods=["post"], url_path="apply-credit")
    @idempotent
    def apply_credit(self, request, pk=None):
        note = self.get_object()
        serializer = CreditApplySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        target = Invoice.objects.filter(pk=serializer.validated_data["invoice"]).first()
        if target is None:
            raise serializers.ValidationError({"invoice": ["No such invoice."]})
        services.credit_note_apply(
            credit_note=note, invoice=target, amount=serializer.validated_data.get("amount"), actor=request.user
        )
        fresh = invoice_queryset().get(pk=note.pk)
        return Response(InvoiceSerializer(fresh, context=self.get_serializer_context()).data)

    @extend_schema(
        summary="Download the invoice PDF",
        responses={
            (200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY, description="The stored PDF."),
            404: ErrorSerializer,
            409: OpenApiResponse(ErrorSerializer, description="A draft, or the PDF is still rendering."),
        },
    )
    @action(detail=True, methods=["get"])
    def pdf(self, request, pk=None):
        invoice = self.get_object()
        if invoice.status == InvoiceStatus.DRAFT:
            raise InvalidTransition(f"{invoice} is a draft; it has no PDF until it is issued.")
        if invoice.pdf_status == PdfStatus.FAILED:
            raise Conflict(f"Rendering the PDF of {invoice} failed; staff can request it again.", code="pdf_failed")
        if invoice.pdf_status != PdfStatus.READY or not invoice.pdf:
            raise Conflict(
                f"The PDF of {invoice} is still rendering; try again in a moment.",
                code="pdf_not_ready",
                details={"pdf_status": invoice.pdf_status},
            )
        try:
            handle = invoice.pdf.open("rb")
        except FileNotFoundError:
            raise Conflict(
                f"The PDF of {invoice} is missing from storage; staff can request it again.", code="pdf_missing"
            ) from None
        return FileResponse(handle, content_type="application/pdf", filename=f"{invoice.number}.pdf")

    def _einvoice(self, build, filename: str) -> HttpResponse:
        invoice = self.get_object()
        if invoice.status in (InvoiceStatus.DRAFT, InvoiceStatus.VOID) or not invoice.number:
            raise InvalidTransition(
                f"{invoice} is {invoice.get_status_display().lower()}; it has no e-invoice until it is issued.",
                details={"status": invoice.status},
            )
        response = HttpResponse(build(invoice), content_type="application/xml; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{filename.format(number=invoice.number)}"'
        return response

    @extend_schema(
        summary="Download the invoice as UBL 2.1 XML (EN 16931)",
        description="An OASIS UBL 2.1 `Invoice` (invoices and penalty invoices) or `CreditNote` (credit notes, "
        "referring to the corrected invoice), with CustomizationID `urn:cen.eu:en16931:2017`.",
        responses={
            (200, "application/xml"): OpenApiResponse(OpenApiTypes.STR, description="The UBL document."),
            404: ErrorSerializer,
            409: OpenApiResponse(ErrorSerializer, description="A draft or void invoice has no e-invoice."),
        },
    )
    @action(detail=True, methods=["get"])
    def ubl(self, request, pk=None):
        return self._einvoice(einvoice.ubl_xml, "{number}.xml")

    @extend_schema(
        summary="Download the invoice as Factur-X XML (UN/CEFACT CII, EN 16931 profile)",
        description="The `factur-x.xml` embedded in the invoice PDF (type code 380 invoice, 381 credit note).",
        responses={
            (200, "application/xml"): OpenApiResponse(OpenApiTypes.STR, description="The CII document."),
            404: ErrorSerializer,
            409: OpenApiResponse(ErrorSerializer, description="A draft or void invoice has no e-invoice."),
        },
    )
    @action(detail=True, methods=["get"])
    def facturx(self, request, pk=None):
        return self._einvoice(einvoice.facturx_xml, "{number}-factur-x.xml")

    @extend_schema(
        summary="Send an issued invoice again",
        description="Electronic customers: e-mails it once more (PDF and e-invoice) to the billing address and "
        "the contacts who receive invoices. Paper customers: puts it in today's print batch unless it is in "
        "one already. The delivery runs on a worker; follow `delivery_status`.",
        request=None,
        responses={202: InvoiceDeliverySerializer, **ACTION_ERRORS},
    )
    @action(detail=True, methods=["post"])
    def send(self, request, pk=None):
        invoice = invoice_resend(invoice=self.get_object(), actor=request.user)
        invoice.refresh_from_db()
        return Response(
            InvoiceDeliverySerializer(invoice, context=self.get_serializer_context()).data,
            status=status.HTTP_202_ACCEPTED,
        )


@extend_schema(tags=["orders"])
class OrderViewSet(orders_api.OrderViewSet):
    """Sales orders. Created as drafts with channel `api`; moved on only by the actions below.
    (Declared here, not in orders.api, because invoicing an order belongs to invoicing: apps
    depend downward only.)"""

    @extend_schema(
        summary="Draft the invoice of a fulfilled order",
        request=None,
        responses={201: InvoiceSerializer, **ACTION_ERRORS},
    )
    @action(detail=True, methods=["post"])
    def invoice(self, request, pk=None):
        invoice = services.invoice_create_from_orders(orders=[self.get_object()], actor=request.user)
        fresh = invoice_queryset().get(pk=invoice.pk)
        return Response(
            InvoiceSerializer(fresh, context=self.get_serializer_context()).data, status=status.HTTP_201_CREATED
        )
