"""REST API for the headline KPIs: open and overdue receivables and DSO, per currency."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.response import Response

from billing.api import ERRORS

from . import selectors


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
