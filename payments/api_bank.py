"""REST API for bank statements: upload a statement file, read statements and their lines, match
or ignore a line waiting in the queue."""

from django.db.models import Count, Q
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from billing.api import ACTION_ERRORS, ERRORS
from billing.models import Customer
from invoicing.models import Invoice
from otc.idempotency import idempotent

from . import bank
from .models import BankAccount, BankLine, BankLineStatus, BankStatement, BankStatementStatus


class BankAccountSerializer(serializers.ModelSerializer):
    class Meta:
        model = BankAccount
        fields = ["id", "name", "iban", "currency", "csv_mapping"]
        read_only_fields = fields


class BankStatementSerializer(serializers.ModelSerializer):
    counts = serializers.SerializerMethodField(help_text="Lines per status.")
    progress_percent = serializers.IntegerField(read_only=True)

    class Meta:
        model = BankStatement
        fields = [
            "id",
            "account",
            "source",
            "filename",
            "file_sha256",
            "statement_ref",
            "status",
            "total_lines",
            "processed_lines",
            "progress_percent",
            "duplicate_lines",
            "counts",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_counts(self, obj) -> dict[str, int]:
        return {s.value: getattr(obj, f"n_{s.value}", 0) for s in BankLineStatus}


class BankStatementUploadSerializer(serializers.Serializer):
    account = serializers.PrimaryKeyRelatedField(queryset=BankAccount.objects.all())
    file = serializers.FileField(help_text="CAMT.053 XML, or CSV read by the account's column mapping.")


class BankLineSerializer(serializers.ModelSerializer):
    payment_number = serializers.CharField(source="payment.number", read_only=True, default=None)

    class Meta:
        model = BankLine
        fields = [
            "id",
            "statement",
            "line_no",
            "entry_ref",
            "booking_date",
            "is_credit",
            "amount",
            "currency",
            "counterparty_name",
            "counterparty_iban",
            "remittance",
            "structured_ref",
            "end_to_end_id",
            "status",
            "reason",
            "customer",
            "suggested_invoice_ids",
            "payment",
            "payment_number",
            "matched_by",
            "matched_at",
        ]
        read_only_fields = fields


class BankLineMatchSerializer(serializers.Serializer):
    customer = serializers.PrimaryKeyRelatedField(
        queryset=Customer.objects.all(),
        required=False,
        help_text="Left out: the suggested customer and invoices (the queue's one-click match).",
    )
    invoices = serializers.PrimaryKeyRelatedField(
        queryset=Invoice.objects.all(),
        many=True,
        required=False,
        help_text="Invoices of the customer to pay, oldest due first; left out: open invoices oldest due first.",
    )


class BankLineIgnoreSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=200)


def _statements():
    return BankStatement.objects.annotate(
        **{f"n_{s.value}": Count("lines", filter=Q(lines__status=s.value)) for s in BankLineStatus}
    )


@extend_schema(tags=["bank"])
@extend_schema_view(list=extend_schema(summary="List bank accounts"))
class BankAccountViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Our bank accounts whose statements are imported."""

    serializer_class = BankAccountSerializer
    queryset = BankAccount.objects.order_by("name")


@extend_schema(tags=["bank"])
@extend_schema_view(
    list=extend_schema(summary="List imported bank statements"),
    retrieve=extend_schema(summary="Show a statement with its matching progress and line counts"),
)
class BankStatementViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """Imported statement files. Uploading the same file again returns the statement it was
    imported as (200) and creates nothing."""

    serializer_class = BankStatementSerializer
    parser_classes = [MultiPartParser, FormParser]
    filterset_fields = ["account", "status", "source"]
    ordering_fields = ["id", "created_at"]

    def get_queryset(self):
        return _statements().order_by("-created_at", "-id")

    @extend_schema(
        summary="Upload a statement file (multipart: account, file)",
        description="The file is checked whole: a bad file is a 400 and stores nothing. Small statements are "
        "matched before the answer; large ones on a worker (poll the statement: status, progress_percent).",
        request={"multipart/form-data": BankStatementUploadSerializer},
        responses={201: BankStatementSerializer, 200: BankStatementSerializer, **ERRORS},
    )
    def create(self, request, *args, **kwargs):
        serializer = BankStatementUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["file"]
        statement, created = bank.bank_statement_import(
            account=serializer.validated_data["account"], filename=upload.name, raw=upload.read(), actor=request.user
        )
        if created and statement.status == BankStatementStatus.MATCHING and statement.total_lines <= bank.INLINE_LINES:
            bank.statement_match(statement_id=statement.pk, actor=request.user)
        fresh = _statements().get(pk=statement.pk)
        return Response(
            BankStatementSerializer(fresh).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


@extend_schema(tags=["bank"])
@extend_schema_view(
    list=extend_schema(
        summary="List bank lines (filter by statement, status; status=suggested,unmatched is the queue)"
    ),
    retrieve=extend_schema(summary="Show a bank line"),
)
class BankLineViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Lines of imported statements and what became of them."""

    serializer_class = BankLineSerializer
    parser_classes = [JSONParser, FormParser, MultiPartParser]
    filterset_fields = {"statement": ["exact"], "status": ["exact", "in"], "customer": ["exact"]}
    search_fields = ["remittance", "counterparty_name", "counterparty_iban", "structured_ref"]
    ordering_fields = ["id", "booking_date", "amount"]

    def get_queryset(self):
        return BankLine.objects.select_related("payment").order_by("statement_id", "line_no")

    @extend_schema(
        summary="Match a queued line: to the suggestion, or to a customer (and invoices) of your choice",
        request=BankLineMatchSerializer,
        responses={200: BankLineSerializer, **ACTION_ERRORS},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def match(self, request, pk=None):
        line = self.get_object()
        serializer = BankLineMatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if data.get("customer"):
            line = bank.bank_line_match(
                line=line, customer=data["customer"], invoices=data.get("invoices") or None, actor=request.user
            )
        else:
            line = bank.bank_line_match_suggestion(line=line, actor=request.user)
        return Response(BankLineSerializer(self.get_queryset().get(pk=line.pk)).data)

    @extend_schema(
        summary="Ignore a queued line, with the reason",
        request=BankLineIgnoreSerializer,
        responses={200: BankLineSerializer, **ACTION_ERRORS},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def ignore(self, request, pk=None):
        line = self.get_object()
        serializer = BankLineIgnoreSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        line = bank.bank_line_ignore(line=line, reason=serializer.validated_data["reason"], actor=request.user)
        return Response(BankLineSerializer(self.get_queryset().get(pk=line.pk)).data)
