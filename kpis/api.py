"""REST API for the KPIs: the headline list, the full set for a period, aging, the monthly trend and
the per-customer table. Read-only, computed with SQL aggregates (the trend reads snapshots first).
And customer feedback (ratings), read and recorded by staff."""

from datetime import timedelta

from django.utils import timezone
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from billing.api import ACTION_ERRORS, ERRORS
from billing.models import Customer
from invoicing.models import Invoice
from otc.api import Pagination

from . import selectors
from .feedback import COMMENT_MAX, feedback_list, feedback_record
from .models import Feedback, FeedbackSource

MAX_PERIOD_DAYS = 3 * 366


class KpiQuerySerializer(serializers.Serializer):
    days = serializers.IntegerField(
        min_value=1, max_value=3650, default=90, help_text="DSO period in days (credit sales of the last N days)."
    )


class PeriodQuerySerializer(serializers.Serializer):
    start = serializers.DateField(required=False, help_text="First day of the period; 90 days before `end` if omitted.")
    end = serializers.DateField(required=False, help_text="Last day of the period (default today).")
    currency = serializers.RegexField(r"^[A-Za-z]{3}$", required=False, help_text="ISO 4217 code, e.g. EUR.")
    customer = serializers.PrimaryKeyRelatedField(queryset=Customer.objects.all(), required=False)

    def validate_currency(self, value):
        return value.upper()

    def validate(self, attrs):
        today = timezone.localdate()
        end = attrs.get("end") or today
        if end > today:
            raise serializers.ValidationError({"end": ["Today or a day before: the future has no figures yet."]})
        start = attrs.get("start") or end - timedelta(days=89)
        if start > end:
            raise serializers.ValidationError({"start": ["Must be on or before the end."]})
        if (end - start).days >= MAX_PERIOD_DAYS:
            raise serializers.ValidationError({"start": [f"A period spans at most {MAX_PERIOD_DAYS} days."]})
        customer = attrs.get("customer")
        return {
            "period": selectors.Period(start, end),
            "currency": attrs.get("currency"),
            "customer": customer.pk if customer else None,
        }


class TrendQuerySerializer(PeriodQuerySerializer):
    months = serializers.IntegerField(min_value=1, max_value=36, default=12)
    keys = serializers.MultipleChoiceField(
        choices=[k.key for k in selectors.KPIS], required=False, help_text="KPIs to return (all when omitted)."
    )

    def validate(self, attrs):
        months, keys = attrs.get("months", 12), attrs.get("keys")
        data = super().validate(attrs)
        return {**data, "months": months, "keys": tuple(sorted(keys)) if keys else tuple(k.key for k in selectors.KPIS)}


def _money(**kwargs):
    return serializers.DecimalField(max_digits=None, decimal_places=2, **kwargs)


def _figure(places=1, **kwargs):
    return serializers.DecimalField(max_digits=None, decimal_places=places, allow_null=True, **kwargs)


class CurrencyKpiSerializer(serializers.Serializer):
    currency = serializers.CharField()
    open_receivables = _money()
    overdue_receivables = _money()
    dso = _figure(help_text="Days sales outstanding; null when there were no credit sales in the period.")


class KpiSummarySerializer(serializers.Serializer):
    as_of = serializers.DateField()
    dso_period_days = serializers.IntegerField()
    currencies = CurrencyKpiSerializer(many=True)
    open_receivables = serializers.DictField(child=_money(), help_text="Per currency code.")
    overdue_receivables = serializers.DictField(child=_money(), help_text="Per currency code.")
    dso = serializers.DictField(child=_figure(), help_text="Per currency code.")


_PLACES = {"money": 2, "times": 2, "count": 0}


def _kpi_fields() -> dict:
    fields = {}
    for kpi in selectors.KPIS:
        places = _PLACES.get(kpi.unit, 1)
        if kpi.unit == "count":
            fields[kpi.key] = serializers.IntegerField(help_text=kpi.help)
        else:
            fields[kpi.key] = _figure(places, help_text=f"{kpi.help} ({kpi.unit}); null when undefined.")
    return fields


KpiFiguresSerializer = type("KpiFiguresSerializer", (serializers.Serializer,), _kpi_fields())


class CurrencyFiguresSerializer(KpiFiguresSerializer):
    currency = serializers.CharField()


class CustomerFiguresSerializer(KpiFiguresSerializer):
    currency = serializers.CharField()
    customer_id = serializers.IntegerField()
    customer = serializers.CharField()


class PaginatedCustomerFiguresSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = CustomerFiguresSerializer(many=True)


class PeriodSerializer(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField()
    days = serializers.IntegerField()


class EntryFiguresSerializer(serializers.Serializer):
    orders = serializers.IntegerField()
    median_seconds = _figure()
    orders_per_clerk_hour = _figure(2)


class FullSummarySerializer(serializers.Serializer):
    period = PeriodSerializer()
    previous_period = PeriodSerializer()
    currencies = CurrencyFiguresSerializer(many=True)
    previous = CurrencyFiguresSerializer(many=True)
    order_entry = EntryFiguresSerializer(allow_null=True, help_text="Null on SQLite (needs PostgreSQL).")


class AgingRowSerializer(serializers.Serializer):
    currency = serializers.CharField()
    as_of = serializers.DateField()
    open_receivables = _money()
    aging_current = _money()
    aging_1_30 = _money()
    aging_31_60 = _money()
    aging_61_90 = _money()
    aging_over_90 = _money()


class TrendPointSerializer(serializers.Serializer):
    month = serializers.DateField()
    value = serializers.DecimalField(max_digits=None, decimal_places=4, allow_null=True)


class TrendSerializer(serializers.Serializer):
    currency = serializers.CharField()
    key = serializers.CharField()
    points = TrendPointSerializer(many=True)


def _period(p: selectors.Period) -> dict:
    return {"start": p.start, "end": p.end, "days": p.days}


@extend_schema(tags=["kpis"])
class KpiViewSet(viewsets.ViewSet):
    """KPIs computed on request with SQL aggregates; definitions in docs/kpis.md."""

    def _query(self, request, serializer_class=PeriodQuerySerializer) -> dict:
        query = serializer_class(data=request.query_params)
        query.is_valid(raise_exception=True)
        return query.validated_data

    @extend_schema(
        summary="Headline KPIs per currency",
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

    @extend_schema(
        summary="Every KPI of a period, per currency, with the previous period",
        parameters=[PeriodQuerySerializer],
        responses={200: FullSummarySerializer, **ERRORS},
    )
    @action(detail=False, methods=["get"])
    def summary(self, request):
        q = self._query(request)
        period, scope = q["period"], {"currency": q["currency"], "customer": q["customer"]}
        now = selectors.kpis(period, **scope)
        before = selectors.kpis(period.previous, **scope)
        data = {
            "period": _period(period),
            "previous_period": _period(period.previous),
            "currencies": [{"currency": cur, **figures} for cur, figures in now.items()],
            "previous": [{"currency": cur, **figures} for cur, figures in before.items()],
            "order_entry": selectors.order_entry(period)["overall"] if not q["customer"] else None,
        }
        return Response(FullSummarySerializer(data).data)

    @extend_schema(
        summary="Aging buckets of open receivables on the period's last day",
        parameters=[PeriodQuerySerializer],
        responses={200: AgingRowSerializer(many=True), **ERRORS},
    )
    @action(detail=False, methods=["get"])
    def aging(self, request):
        q = self._query(request)
        rows = selectors.aging(q["period"].end, currency=q["currency"], customer=q["customer"])
        data = [{"currency": cur, "as_of": q["period"].end, **row} for cur, row in rows.items()]
        return Response(AgingRowSerializer(data, many=True).data)

    @extend_schema(
        summary="Monthly trend: a value per month (the month to its last day), snapshots first",
        parameters=[TrendQuerySerializer],
        responses={200: TrendSerializer(many=True), **ERRORS},
    )
    @action(detail=False, methods=["get"])
    def trend(self, request):
        q = self._query(request, TrendQuerySerializer)
        series = selectors.trend(
            q["period"].end, keys=q["keys"], currency=q["currency"], customer=q["customer"], months=q["months"]
        )
        data = [
            {"currency": cur, "key": key, "points": [{"month": m, "value": v} for m, v in points]}
            for cur, by_key in series.items()
            for key, points in by_key.items()
        ]
        return Response(TrendSerializer(data, many=True).data)

    @extend_schema(
        summary="Every KPI per customer and currency, largest open receivables first (paginated)",
        parameters=[PeriodQuerySerializer],
        responses={200: PaginatedCustomerFiguresSerializer, **ERRORS},
    )
    @action(detail=False, methods=["get"], url_path="per-customer")
    def per_customer(self, request):
        q = self._query(request)
        rows = selectors.customer_table(q["period"], currency=q["currency"], customer=q["customer"])
        paginator = Pagination()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(CustomerFiguresSerializer(page, many=True).data)


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
