"""The KPI dashboard, which is also the home page finance staff land on, and its CSV exports."""

import csv
from decimal import Decimal
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.db.models import F
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone

from invoicing.models import OPEN_STATUSES, Invoice, InvoiceKind

from . import dashboard, selectors
from .charts import line_chart
from .forms import KpiFilterForm
from .models import KpiSnapshot
from .services import AUDIT_KEY

# Tiles of the dashboard, in reading order; each shows the value and the change against the previous period.
TILES = (
    "open_receivables",
    "overdue_receivables",
    "dso",
    "average_days_delinquent",
    "cei",
    "on_time_rate",
    "avg_days_to_pay",
    "o2c_median_days",
    "invoice_accuracy",
    "csat",
    "ar_turnover",
    "penalties_collected",
)
# Second line of a tile: a related figure.
TILE_NOTES = {
    "overdue_receivables": ("share_overdue", "of open receivables"),
    "dso": ("dso_countback", "countback"),
    "average_days_delinquent": ("best_possible_dso", "best possible DSO"),
    "on_time_rate": ("invoices_paid", "paid in the period"),
    "o2c_median_days": ("o2c_p90_days", "p90"),
    "invoice_accuracy": ("invoices_issued", "issued in the period"),
    "csat": ("response_rate", "response rate"),
    "penalties_collected": ("penalties_billed", "billed"),
    "ar_turnover": ("credit_sales", "credit sales"),
}
# Test ids of the tiles that kept their names from the first dashboard (kpi-open-EUR, kpi-overdue-EUR).
TILE_IDS = {"open_receivables": "open", "overdue_receivables": "overdue"}


def _filters(request) -> tuple[KpiFilterForm, dict]:
    form = KpiFilterForm(request.GET or None)
    return form, form.values()


def _scope(values: dict) -> dict:
    customer = values["customer"]
    return {"currency": values["currency"], "customer": customer.pk if customer else None}


def _change(kpi: selectors.Kpi, now, before) -> dict | None:
    """How a figure moved against the previous period, and whether that is good news."""
    if now is None or before is None:
        return None
    delta = Decimal(now) - Decimal(before)
    if kpi.unit == "money" and before:
        text = f"{delta / Decimal(before) * 100:+.1f} %"
    elif kpi.unit == "percent":
        text = f"{delta:+.1f} pts"
    elif kpi.unit == "count":
        text = f"{delta:+.0f}"
    else:
        text = f"{delta:+.1f}" if kpi.unit != "times" else f"{delta:+.2f}"
    if delta == 0 or kpi.higher_is_better is None:
        tone = "neutral"
    else:
        tone = "good" if (delta > 0) == kpi.higher_is_better else "bad"
    return {"text": text, "tone": tone, "up": delta > 0, "flat": delta == 0}


def _drill_url(bucket_key: str, currency: str, customer) -> str:
    query = {"bucket": selectors.AGING_SLUGS[bucket_key], "currency": currency}
    if customer:
        query["customer"] = customer.pk
    return f"{reverse('invoice-list')}?{urlencode(query)}"


def _sections(values: dict, sets: dict) -> list[dict]:
    """One section per currency: tiles, aging with drill-down links, trend charts."""
    now, before, trend = sets["now"], sets["before"], sets["trend"]
    sections = []
    for currency, figures in now.items():
        prior = before.get(currency, {})
        tiles = []
        for key in TILES:
            kpi = selectors.KPI_BY_KEY[key]
            note = TILE_NOTES.get(key)
            tiles.append(
                {
                    "kpi": kpi,
                    "testid": TILE_IDS.get(key, key),
                    "value": figures.get(key),
                    "previous": prior.get(key),
                    "change": _change(kpi, figures.get(key), prior.get(key)),
                    "note": (selectors.KPI_BY_KEY[note[0]], figures.get(note[0]), note[1]) if note else None,
                }
            )
        total = figures["open_receivables"]
        aging = [
            {
                "kpi": selectors.KPI_BY_KEY[key],
                "key": key,
                "amount": figures[key],
                "share": float(figures[key] / total * 100) if total else 0.0,
                "url": _drill_url(key, currency, values["customer"]),
            }
            for key in selectors.AGING_KEYS
        ]
        charts = [
            {"kpi": selectors.KPI_BY_KEY[key], "chart": line_chart(series, unit=selectors.KPI_BY_KEY[key].unit)}
            for key, series in trend.get(currency, {}).items()
        ]
        sections.append(
            {"currency": currency, "figures": figures, "tiles": tiles, "aging": aging, "charts": charts, "total": total}
        )
    return sections


@login_required
def home(request):
    return redirect("kpi-dashboard")


@login_required
def kpi_dashboard(request):
    """Served from the last computed figure sets at once (see kpis/dashboard.py): when rows changed
    since, the page says "as of" when they were computed and that newer figures are on their way."""
    today = timezone.localdate()
    form, values = _filters(request)
    overdue = (
        Invoice.objects.filter(status__in=OPEN_STATUSES, due_date__lt=today)
        .exclude(kind=InvoiceKind.CREDIT_NOTE)
        .select_related("customer")
        .annotate(balance_due=F("gross_total") - F("amount_paid"))
        .order_by("due_date", "pk")[:10]
    )
    version = selectors.data_version()
    params = dashboard.dashboard_params(values)
    figures = dashboard.figures("dashboard", params, version=version)
    work = dashboard.figures("work", {}, version=version)
    sets = figures.value
    period = selectors.Period(*sets["period"])
    context = {
        "form": form,
        "values": values,
        "period": period,
        "previous": period.previous,
        "sections": _sections(values, sets),
        "customers": sets["customers"] or [],
        "customer_rows": dashboard.CUSTOMER_ROWS,
        "entry": sets["entry"],
        "percentiles": selectors.percentiles_available(),
        "work": work.value,
        "overdue": [(invoice, (today - invoice.due_date).days) for invoice in overdue],
        "audit": KpiSnapshot.objects.filter(key=AUDIT_KEY, customer__isnull=True).order_by("-date").first(),
        "query": request.GET.urlencode(),
        "is_today": period.end == today,
        "figures": figures,
        "status_url": f"{reverse('kpi-status')}?{request.GET.urlencode()}",
    }
    return render(request, "kpis/dashboard.html", context)


@login_required
def kpi_status(request):
    """Polled by a dashboard showing figures older than the data: a small note, "refreshing" until
    the worker has stored the new figures, then a link to show them. Computes and queues nothing."""
    _form, values = _filters(request)
    state = dashboard.status("dashboard", dashboard.dashboard_params(values), version=selectors.data_version())
    ready = state is None or state["fresh"]
    return render(
        request,
        "kpis/_refresh_status.html",
        {"ready": ready, "status_url": request.get_full_path(), "query": request.GET.urlencode()},
    )


# --- CSV exports: every table of the dashboard, with the same filters --------------------------------


def _fmt(value) -> str:
    return "" if value is None else str(value)


def _summary_rows(values):
    keys = [k.key for k in selectors.KPIS]
    scope = _scope(values)
    yield ["currency", "period_start", "period_end", *keys]
    for currency, figures in selectors.kpis(values["period"], **scope).items():
        yield [currency, values["period"].start, values["period"].end, *(_fmt(figures.get(k)) for k in keys)]


def _aging_rows(values):
    scope = _scope(values)
    yield ["currency", "as_of", "open_receivables", *selectors.AGING_KEYS]
    for currency, row in selectors.aging(values["period"].end, **scope).items():
        yield [currency, values["period"].end, row["open_receivables"], *(row[k] for k in selectors.AGING_KEYS)]


def _customer_rows(values):
    keys = [k.key for k in selectors.KPIS]
    yield ["customer_id", "customer", "currency", *keys]
    scope = _scope(values)
    for row in selectors.customer_table(values["period"], currency=scope["currency"], customer=scope["customer"]):
        yield [row["customer_id"], row["customer"], row["currency"], *(_fmt(row.get(k)) for k in keys)]


def _trend_rows(values):
    keys = [k.key for k in selectors.KPIS]
    series = selectors.trend(values["period"].end, keys=tuple(keys), **_scope(values))
    yield ["currency", "month", *keys]
    for currency, by_key in series.items():
        months = [month for month, _v in by_key[keys[0]]]
        for i, month in enumerate(months):
            yield [currency, month, *(_fmt(by_key[k][i][1]) for k in keys)]


def _entry_rows(values):
    entry = selectors.order_entry(values["period"])
    yield ["group", "name", "orders", "median_seconds", "orders_per_clerk_hour"]
    if entry["overall"]:
        o = entry["overall"]
        yield ["all", "", o["orders"], _fmt(o["median_seconds"]), _fmt(o["orders_per_clerk_hour"])]
    for r in entry["channels"]:
        yield ["channel", r["channel"], r["orders"], _fmt(r["median_seconds"]), _fmt(r["orders_per_clerk_hour"])]
    for r in entry["clerks"]:
        yield ["clerk", r["clerk"], r["orders"], _fmt(r["median_seconds"]), _fmt(r["orders_per_clerk_hour"])]


EXPORTS = {
    "summary": _summary_rows,
    "aging": _aging_rows,
    "customers": _customer_rows,
    "trend": _trend_rows,
    "entry": _entry_rows,
}


@login_required
def kpi_export(request, table: str):
    if table not in EXPORTS:
        raise Http404("No such table.")
    _form, values = _filters(request)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    name = f"kpi-{table}-{values['period'].start}-{values['period'].end}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    writer = csv.writer(response)
    for row in EXPORTS[table](values):
        writer.writerow(row)
    return response
