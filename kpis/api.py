"""REST API for the headline KPIs (open and overdue receivables and DSO, per currency) and customer feedback."""

from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response

from billing.api import ACTION_ERRORS, ERRORS
from invoicing.models import Invoice

from . import selectors
from .feedback import COMMENT_MAX, feedback_list, feedback_record
from .models import Feedback, FeedbackSource


class KpiQuerySerializer(serializers.Serializer):
    days = serializers.IntegerField(
        min_value=1, max_value=3650, default=90, help_text="DSO period in days (credit sales of the last N days)."
    )


def _money(**kwargs):
    return serializers.DecimalField(max_digits=None, decimal_places=2, **kwargs)


def _dso(**kwargs):
    return serializers.DecimalField(max_digits=None, decimal_places=1, allow_null=True, **kwargs)


class CurrencyKpiSerializer(serializers.Serializer):
    currency = serializers.CharField()
    open_receivables = _money()
    overdue_receivables = _money()
    dso = _dso(help_text="Days sales outstanding; null when there were no credit sales in the period.")


class KpiSummarySerializer(serializers.Serializer):
    as_of = serializers.DateField()
    dso_period_days = serializers.IntegerField()
    currencies = CurrencyKpiSerializer(many=True)
    open_receivables = serializers.DictField(child=_money(), help_text="Per currency code.")
    overdue_receivables = serializers.DictField(child=_money(), help_text="Per currency code.")
    dso = serializers.DictField(child=_dso(), help_text="Per currency code.")


@extend_schema(tags=["kpis"])
class KpiViewSet(viewsets.ViewSet):
    """Headline KPIs, computed on request with SQL aggregates."""

    @extend_schema(
        summary="KPI summary per currency",
        parameters=[KpiQuerySerializer],
        responses={200: KpiSummarySerializer, **ERRORS},
    )
    def list(self, request):
        query = KpiQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        summary = selectors.summary(days=query.validated_data["days"])
        rows = summary["currencies"]
        data = {
            **summary,
            "open_receivables": {r["currency"]: r["open_receivables"] for r in rows},
            "overdue_receivables": {r["currency"]: r["overdue_receivables"] for r in rows},
            "dso": {r["currency"]: r["dso"] for r in rows},
        }
        return Response(KpiSummarySerializer(data).data)


# --- Customer satisfaction feedback ------------------------------------------------------------


class FeedbackSerializer(serializers.ModelSerializer):
    invoice_number = serializers.CharField(source="invoice.number", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Feedback
        fields = [
            "id",
            "invoice",
            "invoice_number",
            "customer",
            "rating",
            "comment",
            "source",
            "created_by",
            "created_at",
        ]
        read_only_fields = fields


class FeedbackCreateSerializer(serializers.Serializer):
    invoice = serializers.PrimaryKeyRelatedField(queryset=Invoice.objects.all())
    rating = serializers.IntegerField(min_value=1, max_value=5)
    comment = serializers.CharField(max_length=COMMENT_MAX, required=False, allow_blank=True, default="")


class FeedbackFilter(filters.FilterSet):
    customer = filters.NumberFilter(field_name="customer_id")
    invoice = filters.NumberFilter(field_name="invoice_id")
    rating = filters.NumberFilter()
    rating_min = filters.NumberFilter(field_name="rating", lookup_expr="gte")
    rating_max = filters.NumberFilter(field_name="rating", lookup_expr="lte")
    created_at = filters.IsoDateTimeFromToRangeFilter()

    class Meta:
        model = Feedback
        fields = ["customer", "invoice", "rating", "source"]


@extend_schema_view(
    list=extend_schema(summary="List customer feedback"),
    retrieve=extend_schema(summary="Show one feedback answer"),
)
@extend_schema(tags=["kpis"])
class FeedbackViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Customer satisfaction answers (1-5 and a comment), one per invoice: from the signed link on
    invoices and their e-mails (source `link`) or recorded by staff after a call (source `call`)."""

    serializer_class = FeedbackSerializer
    filterset_class = FeedbackFilter
    search_fields = ["comment", "invoice__number"]
    ordering_fields = ["id", "created_at", "rating"]

    def get_queryset(self):
        return feedback_list().order_by("-created_at", "-id")

    def get_serializer_class(self):
        return FeedbackCreateSerializer if self.action == "create" else FeedbackSerializer

    @extend_schema(
        summary="Record feedback taken during a call",
        description="Stored with source `call` and the caller as author. An invoice keeps one answer: "
        "a second one is refused with 409.",
        request=FeedbackCreateSerializer,
        responses={201: FeedbackSerializer, **ACTION_ERRORS},
    )
    def create(self, request, *args, **kwargs):
        serializer = FeedbackCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        feedback = feedback_record(
            invoice=data["invoice"],
            rating=data["rating"],
            comment=data["comment"],
            source=FeedbackSource.CALL,
            actor=request.user,
        )
        fresh = feedback_list().get(pk=feedback.pk)
        return Response(FeedbackSerializer(fresh).data, status=status.HTTP_201_CREATED)
