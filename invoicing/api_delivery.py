"""REST API for invoice delivery: print batches (list, show, merged PDF, close, mark posted) and
the delivery state returned by POST /invoices/{id}/send/."""

from django.db.models import Prefetch
from django.http import FileResponse
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from billing.api import ACTION_ERRORS, ErrorSerializer
from billing.errors import Conflict, InvalidTransition

from . import delivery
from .models import Invoice, PrintBatch, PrintBatchItem, PrintBatchStatus


class InvoiceDeliverySerializer(serializers.ModelSerializer):
    billing_method = serializers.SerializerMethodField()

    class Meta:
        model = Invoice
        fields = [
            "id",
            "number",
            "billing_method",
            "delivery_status",
            "delivered_at",
            "delivery_error",
            "delivery_attempts",
        ]
        read_only_fields = fields

    def get_billing_method(self, invoice) -> str:
        return delivery.billing_method(invoice)


class PrintBatchInvoiceSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="invoice_id")
    number = serializers.CharField(source="invoice.number")
    customer = serializers.CharField(source="invoice.customer_snapshot.legal_name", default="")
    delivery_status = serializers.CharField(source="invoice.delivery_status")


class PrintBatchSerializer(serializers.ModelSerializer):
    invoices = PrintBatchInvoiceSerializer(source="items", many=True, read_only=True)

    class Meta:
        model = PrintBatch
        fields = [
            "id",
            "date",
            "status",
            "invoice_count",
            "page_count",
            "pdf_sha256",
            "created_at",
            "closed_at",
            "posted_at",
            "posted_by",
            "invoices",
        ]
        read_only_fields = fields


def print_batch_queryset():
    items = PrintBatchItem.objects.filter(invoice__isnull=False).select_related("invoice").order_by("invoice__number")
    return PrintBatch.objects.prefetch_related(Prefetch("items", queryset=items))


class PrintBatchFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=PrintBatchStatus.choices)
    date = filters.DateFromToRangeFilter()

    class Meta:
        model = PrintBatch
        fields = ["status", "date"]


@extend_schema_view(
    list=extend_schema(summary="List print batches"),
    retrieve=extend_schema(summary="Show a print batch with its invoices"),
)
@extend_schema(tags=["print batches"])
class PrintBatchViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The paper invoices of a day, printed as one PDF and posted together. A batch is open while it
    takes the day's paper invoices, closed once its merged PDF is built, posted once mailed."""

    serializer_class = PrintBatchSerializer
    filterset_class = PrintBatchFilter
    ordering_fields = ["id", "date", "invoice_count"]

    def get_queryset(self):
        return print_batch_queryset() if self.action in ("list", "retrieve") else PrintBatch.objects.all()

    def perform_content_negotiation(self, request, force=False):
        # The PDF is a plain file response; errors on it are JSON rather than a 406.
        return super().perform_content_negotiation(request, force=force or self.action == "pdf")

    @extend_schema(
        summary="Download the merged PDF of a closed batch",
        description="All invoices of the batch in number order, each starting on a fresh sheet for duplex "
        "printing (a blank page follows an odd page count).",
        responses={
            (200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY, description="The merged PDF."),
            404: ErrorSerializer,
            409: OpenApiResponse(ErrorSerializer, description="The batch is still open."),
        },
    )
    @action(detail=True, methods=["get"])
    def pdf(self, request, pk=None):
        batch = self.get_object()
        if batch.status == PrintBatchStatus.OPEN or not batch.pdf:
            raise InvalidTransition(f"{batch} is open; close it to build its PDF.")
        try:
            handle = batch.pdf.open("rb")
        except FileNotFoundError:
            raise Conflict(f"The PDF of {batch} is missing from storage.", code="pdf_missing") from None
        return FileResponse(handle, content_type="application/pdf", filename=f"print-batch-{batch.date}-{batch.pk}.pdf")

    @extend_schema(
        summary="Close a print batch",
        description="Merges the PDFs of its invoices, in number order, into one file to print. "
        "Paper invoices delivered afterwards go to a new open batch.",
        request=None,
        responses={200: PrintBatchSerializer, **ACTION_ERRORS},
    )
    @action(detail=True, methods=["post"])
    def close(self, request, pk=None):
        batch = delivery.print_batch_close(batch=self.get_object(), actor=request.user)
        return self._detail(batch)

    @extend_schema(
        summary="Mark a printed batch as posted",
        description="Its invoices' delivery status becomes `posted`.",
        request=None,
        responses={200: PrintBatchSerializer, **ACTION_ERRORS},
    )
    @action(detail=True, methods=["post"], url_path="mark-posted")
    def mark_posted(self, request, pk=None):
        batch = delivery.print_batch_mark_posted(batch=self.get_object(), actor=request.user)
        return self._detail(batch)

    def _detail(self, batch: PrintBatch) -> Response:
        fresh = print_batch_queryset().get(pk=batch.pk)
        return Response(PrintBatchSerializer(fresh, context=self.get_serializer_context()).data)


# --- Billing runs ---------------------------------------------------------------------------------
from billing.api_runs import RunFilter, RunSerializer, RunViewSet, start_schema  # noqa: E402

from . import billing_runs  # noqa: E402
from .models import BillingRun, BillingRunStatus  # noqa: E402


class BillingRunSerializer(RunSerializer):
    class Meta:
        model = BillingRun
        fields = [
            *RunSerializer.COMMON,
            "total_groups",
            "processed_groups",
            "invoices_created",
            "orders_billed",
            "skipped_groups",
        ]
        read_only_fields = fields


class BillingRunFilter(RunFilter):
    status = filters.MultipleChoiceFilter(choices=BillingRunStatus.choices)

    class Meta:
        model = BillingRun
        fields = ["status", "as_of"]


@extend_schema_view(
    list=extend_schema(summary="List billing runs"),
    retrieve=extend_schema(summary="Show a billing run and its progress"),
    create=start_schema(
        "Start a billing run",
        "Bills the fulfilled, uninvoiced orders following each customer's cycle, as of the date, on the "
        "workers. Answers 202 with the run at once; poll it until `status` is `done`. Safe to repeat: "
        "nothing is billed twice.",
        BillingRunSerializer,
    ),
)
@extend_schema(tags=["billing runs"])
class BillingRunViewSet(RunViewSet):
    """Billing runs (daily by beat, or started here, in the UI or by `manage.py run_billing`)."""

    queryset = BillingRun.objects.select_related("started_by")
    serializer_class = BillingRunSerializer
    filterset_class = BillingRunFilter

    def start(self, *, as_of, actor):
        return billing_runs.run_start(as_of=as_of, actor=actor)
