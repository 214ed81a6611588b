"""KPI figures, computed with SQL aggregates (never by looping over rows in Python).

Every figure is defined, with its formula, in docs/kpis.md. They come in families, one aggregate
query each, over a period (first and last day, both included), per currency, and either over all
customers or grouped per customer:

- receivables: open receivables at the period's end and the day before its start, aging at the end;
- sales: credit sales of the period and of the 24 months before its end (countback DSO), penalties billed;
- payments: on-time payment rate and average days to pay of invoices paid in the period;
- quality: invoice accuracy, feedback response rate and CSAT of invoices issued in the period;
- penalties collected in the period;
- order-to-cash cycle time (median and p90) and order entry speed: percentiles, PostgreSQL only
  (on the embedded SQLite they are None, shown as "n/a").

A settlement of an invoice is an allocation of a payment (dated by the payment's `received_on`;
its amount plus the discount taken; none when the payment was reversed) or a credit note applied to
it (dated by the credit note's issue date). An invoice is paid on the
date of its last settlement; its balance on a day is its gross total less settlements dated on or
before that day. Only the figures, the ratios between them and the countback walk over at most 24
monthly totals are computed in Python.
"""

import calendar
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db import connection
from django.db.models import Count, DecimalField, Exists, OuterRef, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from billing.models import Customer
from invoicing.models import OPEN_STATUSES, CreditApplication, Invoice, InvoiceKind, InvoiceLine, InvoiceStatus
from orders.models import Order, OrderLine
from payments.models import Allocation, Payment

ZERO = Decimal("0.00")
_MONEY = DecimalField(max_digits=16, decimal_places=2)
_ZERO = Value(ZERO, output_field=_MONEY)
BILLED = (InvoiceStatus.ISSUED, InvoiceStatus.PARTIALLY_PAID, InvoiceStatus.PAID)
# What a customer owes: sales and late-payment penalty invoices. Credit notes settle them when applied.
RECEIVABLE_KINDS = (InvoiceKind.INVOICE, InvoiceKind.PENALTY)
COUNTBACK_MONTHS = 24
# Stored with every day's snapshots (blank currency): the day was snapshotted, even with no figures.
SNAPSHOT_MARKER = "snapshot_stored"
AGING_KEYS = ("aging_current", "aging_1_30", "aging_31_60", "aging_61_90", "aging_over_90")
# Slugs of the invoice list's `bucket` filter, for the drill-down from each aging bucket.
AGING_SLUGS = dict(zip(AGING_KEYS, ("current", "1-30", "31-60", "61-90", "90-plus"), strict=True))


@dataclass(frozen=True)
class Kpi:
    key: str
    label: str
    unit: str  # money, days, percent, times, count, seconds, rate
    higher_is_better: bool | None = None  # None: neither (a volume)
    help: str = ""


KPIS: tuple[Kpi, ...] = (
    Kpi("open_receivables", "Open receivables", "money", None, "Balances of issued invoices and penalties."),
    Kpi("overdue_receivables", "Overdue receivables", "money", False, "Open balances past their due date."),
    Kpi("share_overdue", "Share overdue", "percent", False, "Overdue / open receivables."),
    Kpi("aging_current", "Current", "money", None, "Not yet due."),
    Kpi("aging_1_30", "1–30 days", "money", None, "Past due 1 to 30 days."),  # noqa: RUF001
    Kpi("aging_31_60", "31–60 days", "money", None, "Past due 31 to 60 days."),  # noqa: RUF001
    Kpi("aging_61_90", "61–90 days", "money", None, "Past due 61 to 90 days."),  # noqa: RUF001
    Kpi("aging_over_90", "90+ days", "money", None, "Past due more than 90 days."),
    Kpi("credit_sales", "Credit sales", "money", True, "Invoices and penalties issued in the period."),
    Kpi("dso", "DSO", "days", False, "Open receivables / credit sales x days in the period."),
    Kpi("dso_countback", "DSO (countback)", "days", False, "Days of the latest sales that make up receivables."),
    Kpi("best_possible_dso", "Best possible DSO", "days", False, "Current receivables / credit sales x days."),
    Kpi("average_days_delinquent", "Average days delinquent", "days", False, "DSO - best possible DSO."),
    Kpi("cei", "Collection effectiveness", "percent", True, "Share of what could be collected that was."),
    Kpi("ar_turnover", "AR turnover", "times", True, "Credit sales / average open receivables."),
    Kpi("on_time_rate", "On-time payment rate", "percent", True, "Invoices paid in the period by their due date."),
    Kpi("avg_days_to_pay", "Average days to pay", "days", False, "Issue to payment, invoices paid in the period."),
    Kpi("invoices_paid", "Invoices paid", "count", None, "Invoices whose last payment fell in the period."),
    Kpi("o2c_median_days", "Order-to-cash (median)", "days", False, "Order confirmed → invoice paid."),
    Kpi("o2c_p90_days", "Order-to-cash (p90)", "days", False, "9 orders in 10 were paid within this."),
    Kpi("o2c_orders", "Orders paid", "count", None, "Orders whose invoices were all paid in the period."),
    Kpi("invoice_accuracy", "Invoice accuracy", "percent", True, "Invoices issued in the period never credited."),
    Kpi("invoices_issued", "Invoices issued", "count", None, "Sales invoices issued in the period."),
    Kpi("csat", "CSAT", "percent", True, "Ratings of 4 or 5 among the feedback received."),
    Kpi("response_rate", "Feedback response rate", "percent", True, "Invoices issued in the period with a rating."),
    Kpi("penalties_billed", "Penalties billed", "money", None, "Penalty invoices issued in the period."),
    Kpi("penalties_collected", "Penalties collected", "money", True, "Payments allocated to penalties."),
)
KPI_BY_KEY = {k.key: k for k in KPIS}
# Not money and not per currency: stored in snapshots with a blank currency.
ENTRY_KPIS: tuple[Kpi, ...] = (
    Kpi("entry_median_seconds", "Order entry time (median)", "seconds", False, "Entry start → confirmation."),
    Kpi("entry_orders_per_clerk_hour", "Orders per clerk-hour", "rate", True, "Orders / hours spent entering."),
    Kpi("entry_orders", "Orders entered", "count", None, "Orders confirmed in the period with timed entry."),
)
KPI_BY_KEY.update({k.key: k for k in ENTRY_KPIS})


@dataclass(frozen=True)
class Period:
    """A run of days, both ends included."""

    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def previous(self) -> "Period":
        """The period of the same length just before this one (a calendar month for a whole month)."""
        if self.start.day == 1 and self.end == _month_end(self.end) and self.start.month == self.end.month:
            before = self.start - timedelta(days=1)
            return Period(before.replace(day=1), before)
        return Period(self.start - timedelta(days=self.days), self.start - timedelta(days=1))

    @classmethod
    def last_days(cls, days: int, end: date) -> "Period":
        return cls(end - timedelta(days=days - 1), end)

    @classmethod
    def month_to_date(cls, day: date) -> "Period":
        return cls(day.replace(day=1), day)


def _month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def months_back(day: date, months: int) -> date:
    """The same day `months` calendar months earlier, clipped to the month's last day."""
    y, m = divmod(day.year * 12 + day.month - 1 - months, 12)
    return date(y, m + 1, min(day.day, calendar.monthrange(y, m + 1)[1]))


def _q(value: Decimal | None, places: str) -> Decimal | None:
    return None if value is None else Decimal(value).quantize(Decimal(places), rounding=ROUND_HALF_UP)


def _ratio(num, den, *, scale: int = 1, places: str = "0.1") -> Decimal | None:
    """num / den x scale, or None when the denominator is zero (the figure is undefined)."""
    if num is None or not den:
        return None
    return _q(Decimal(num) / Decimal(den) * scale, places)


def _t(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _scope_sql(alias: str, currency: str | None, customer: int | None) -> tuple[str, list]:
    sql, params = "", []
    if currency:
        sql += f" AND {alias}.currency = %s"
        params.append(currency)
    if customer:
        sql += f" AND {alias}.customer_id = %s"
        params.append(customer)
    return sql, params


def _named_scope(alias: str, currency: str | None, customer: int | None) -> tuple[str, dict]:
    sql, params = "", {}
    if currency:
        sql += f" AND {alias}.currency = %(currency)s"
        params["currency"] = currency
    if customer:
        sql += f" AND {alias}.customer_id = %(customer)s"
        params["customer"] = customer
    return sql, params


def _fetch(sql: str, params) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _group_key(row: dict, by_customer: bool):
    return (row["currency"], row["customer_id"]) if by_customer else row["currency"]


def _settlements_sql() -> str:
    """(invoice_id, amount, settled_on) of every allocation and applied credit note, as they make
    up the invoice's amount paid: an allocation settles its money plus the early-payment discount
    taken, and a reversed payment (a bounced check, a chargeback) settled nothing."""
    return f"""
        SELECT a.invoice_id, a.amount + a.discount AS amount, p.received_on AS settled_on
        FROM {_t(Allocation)} a JOIN {_t(Payment)} p ON p.id = a.payment_id
        WHERE a.reversed_at IS NULL
        UNION ALL
        SELECT c.invoice_id, c.amount, cn.issue_date AS settled_on
        FROM {_t(CreditApplication)} c JOIN {_t(Invoice)} cn ON cn.id = c.credit_note_id
    """  # noqa: S608 (only table names and fixed fragments are formatted in)


# --- Receivables: open balances on a day and their aging ----------------------------------------


def _receivables_params(period: Period, scope_params: dict) -> dict:
    end = period.end
    return {
        "end": end,
        "begin": period.start - timedelta(days=1),
        "d30": end - timedelta(days=30),
        "d60": end - timedelta(days=60),
        "d90": end - timedelta(days=90),
        "issued": InvoiceStatus.ISSUED.value,
        "partially_paid": InvoiceStatus.PARTIALLY_PAID.value,
        "invoice": InvoiceKind.INVOICE.value,
        "penalty": InvoiceKind.PENALTY.value,
        **scope_params,
    }


def _balances_on_sql(day: str, scope: str, group: str) -> str:
    """(group..., due_date, amount) whose sum per invoice is its balance on `day` (a parameter
    name), for receivables issued by then: the balances open today (gross - amount paid)
    plus the settlements dated after the day added back (few for recent days)."""
    return f"""
          SELECT {group}, i.due_date, i.gross_total - i.amount_paid AS amount
          FROM {_t(Invoice)} i
          WHERE i.status IN (%(issued)s, %(partially_paid)s) AND i.kind IN (%(invoice)s, %(penalty)s)
            AND i.issue_date <= %({day})s {scope}
          UNION ALL
          SELECT {group}, i.due_date, s.amount
          FROM ({_settlements_sql()}) s JOIN {_t(Invoice)} i ON i.id = s.invoice_id
          WHERE s.settled_on > %({day})s AND i.kind IN (%(invoice)s, %(penalty)s)
            AND i.issue_date <= %({day})s {scope}
    """  # noqa: S608 (only table names and fixed fragments are formatted in)


def receivables_end_sql(by_customer: bool, scope: str) -> str:
    """Open receivables on the period's last day and their aging: one aggregate over the balances
    on that day (for today, the open invoices alone: no settlement is dated after today)."""
    group = "i.currency, i.customer_id" if by_customer else "i.currency"
    out = "currency, customer_id" if by_customer else "currency"
    return f"""
        SELECT {out}, SUM(amount) AS ar_end,
          SUM(CASE WHEN due_date >= %(end)s THEN amount ELSE 0 END) AS aging_current,
          SUM(CASE WHEN due_date < %(end)s AND due_date >= %(d30)s THEN amount ELSE 0 END) AS aging_1_30,
          SUM(CASE WHEN due_date < %(d30)s AND due_date >= %(d60)s THEN amount ELSE 0 END) AS aging_31_60,
          SUM(CASE WHEN due_date < %(d60)s AND due_date >= %(d90)s THEN amount ELSE 0 END) AS aging_61_90,
          SUM(CASE WHEN due_date < %(d90)s THEN amount ELSE 0 END) AS aging_over_90
        FROM ({_balances_on_sql("end", scope, group)}) balances
        GROUP BY {out}
    """  # noqa: S608 (only table names and fixed fragments are formatted in)


def receivables_opening_sql(by_customer: bool, scope: str) -> str:
    """Open receivables on the day before the period (for CEI and turnover)."""
    group = "i.currency, i.customer_id" if by_customer else "i.currency"
    out = "currency, customer_id" if by_customer else "currency"
    return f"""
        SELECT {out}, SUM(amount) AS ar_begin
        FROM ({_balances_on_sql("begin", scope, group)}) balances
        GROUP BY {out}
    """  # noqa: S608 (only table names and fixed fragments are formatted in)


def receivables_part(part: str, period: Period, *, currency=None, customer=None, by_customer=False) -> list[dict]:
    """One of the two parts of `receivables` ("end" or "opening") on its own: the bench times each
    against the hand-written SQL of the same figure."""
    scope, scope_params = _named_scope("i", currency, customer)
    sql = (receivables_end_sql if part == "end" else receivables_opening_sql)(by_customer, scope)
    return _fetch(sql, _receivables_params(period, scope_params))


def receivables(period: Period, *, currency=None, customer=None, by_customer=False) -> dict:
    """Open receivables at the end of the period and on the day before it starts, the current part
    and the aging buckets at the end. One round trip made of two aggregates, each over the balances
    of its own day (`_balances_on_sql`): the end's reads only the settlements dated after the end
    (none for today), the opening one those dated after the day before the period. Aging as in
    billing.selectors.customer_account: days past due = day - due date; due that day or later is
    current."""
    scope, scope_params = _named_scope("i", currency, customer)
    keys = "currency, customer_id" if by_customer else "currency"
    sql = f"""
        SELECT {keys}, e.ar_end, o.ar_begin, e.aging_current, e.aging_1_30, e.aging_31_60, e.aging_61_90,
          e.aging_over_90
        FROM ({receivables_end_sql(by_customer, scope)}) e
        FULL OUTER JOIN ({receivables_opening_sql(by_customer, scope)}) o USING ({keys})
    """  # noqa: S608 (only table names and fixed fragments are formatted in)
    out = {}
    for row in _fetch(sql, _receivables_params(period, scope_params)):
        row.setdefault("customer_id", None)
        figures = {k: _q(row[k] or ZERO, "0.01") for k in ("ar_end", "ar_begin", *AGING_KEYS)}
        out[_group_key(row, by_customer)] = figures
    return out


# --- Sales: the period's credit sales and the months before it (countback) ----------------------


def sales(period: Period, *, currency=None, customer=None, by_customer=False) -> dict:
    """Credit sales (gross of invoices and penalties issued) in the period and in each of the 24
    calendar months ending on the period's last day, and penalties billed. One query."""
    end = period.end
    bounds = [months_back(end, k) for k in range(COUNTBACK_MONTHS + 1)]  # bounds[k]: end of month block k
    earliest = min(bounds[-1] + timedelta(days=1), period.start)
    qs = Invoice.objects.filter(status__in=BILLED, kind__in=RECEIVABLE_KINDS, issue_date__gte=earliest)
    qs = qs.filter(issue_date__lte=end)
    if currency:
        qs = qs.filter(currency=currency)
    if customer:
        qs = qs.filter(customer_id=customer)
    in_period = Q(issue_date__gte=period.start)
    aggregates = {
        "sales": Coalesce(Sum("gross_total", filter=in_period), _ZERO),
        "penalties_billed": Coalesce(Sum("gross_total", filter=in_period & Q(kind=InvoiceKind.PENALTY)), _ZERO),
    }
    for k in range(COUNTBACK_MONTHS):
        block = Q(issue_date__gt=bounds[k + 1], issue_date__lte=bounds[k])
        aggregates[f"m{k}"] = Coalesce(Sum("gross_total", filter=block), _ZERO)
    group = ["currency", "customer_id"] if by_customer else ["currency"]
    out = {}
    for row in qs.values(*group).annotate(**aggregates).order_by(*group):
        row.setdefault("customer_id", None)
        months = [(row[f"m{k}"], (bounds[k] - bounds[k + 1]).days) for k in range(COUNTBACK_MONTHS)]
        out[_group_key(row, by_customer)] = {
            "sales": row["sales"],
            "penalties_billed": row["penalties_billed"],
            "months": months,
        }
    return out


def countback_dso(open_ar: Decimal, months: list[tuple[Decimal, int]]) -> Decimal | None:
    """Walk back from the latest month: a month whose sales the receivables still cover counts all
    its days, the month where they run out counts its share of days. None without receivables to
    explain or sales to explain them with; capped at the 24 months looked at."""
    if not open_ar or open_ar <= 0:
        return Decimal("0.0") if open_ar == 0 else None
    if not any(amount for amount, _days in months):
        return None
    left, days = Decimal(open_ar), Decimal(0)
    for amount, month_days in months:
        if left <= 0:
            break
        if amount <= 0:
            days += month_days
        elif left >= amount:
            days += month_days
            left -= amount
        else:
            days += Decimal(month_days) * left / amount
            left = Decimal(0)
    return _q(days, "0.1")


# --- Payments: when invoices were paid -----------------------------------------------------------


def _days_between(later: str, earlier: str) -> str:
    if connection.vendor == "postgresql":
        return f"({later} - {earlier})"
    return f"CAST(julianday({later}) - julianday({earlier}) AS INTEGER)"


def _paid_on_sql(start_param: str = "%s", end_param: str = "%s") -> str:
    """(invoice_id, paid_on) of invoices whose last settlement is dated in [start, end]: the
    settlements of invoices with one dated on or after the start, grouped, kept when the last is by
    the end. The caller keeps only invoices whose status is paid."""
    return f"""
        SELECT s.invoice_id, MAX(s.settled_on) AS paid_on
        FROM ({_settlements_sql()}) s
        WHERE s.invoice_id IN (SELECT r.invoice_id FROM ({_settlements_sql()}) r WHERE r.settled_on >= {start_param})
        GROUP BY s.invoice_id
        HAVING MAX(s.settled_on) <= {end_param}
    """  # noqa: S608 (only table names and fixed fragments are formatted in)


def payments(period: Period, *, currency=None, customer=None, by_customer=False) -> dict:
    """Sales invoices paid in the period (their last settlement dated in it): how many, how many by
    their due date, and the days from issue to payment in total. One query."""
    scope, scope_params = _scope_sql("i", currency, customer)
    group = "i.currency, i.customer_id" if by_customer else "i.currency"
    sql = f"""
        SELECT {group}, COUNT(*) AS paid,
          SUM(CASE WHEN pd.paid_on <= i.due_date THEN 1 ELSE 0 END) AS on_time,
          SUM({_days_between("pd.paid_on", "i.issue_date")}) AS days_to_pay
        FROM ({_paid_on_sql()}) pd JOIN {_t(Invoice)} i ON i.id = pd.invoice_id
        WHERE i.status = %s AND i.kind = %s {scope}
        GROUP BY {group}
    """  # noqa: S608 (only table names and fixed fragments are formatted in)
    params = [period.start, period.end, InvoiceStatus.PAID, InvoiceKind.INVOICE, *scope_params]
    out = {}
    for row in _fetch(sql, params):
        out[_group_key(row, by_customer)] = {
            "invoices_paid": row["paid"],
            "on_time_rate": _ratio(row["on_time"], row["paid"], scale=100),
            "avg_days_to_pay": _ratio(row["days_to_pay"], row["paid"]),
        }
    return out


# --- Quality: credited invoices, feedback ---------------------------------------------------------


def quality(period: Period, *, currency=None, customer=None, by_customer=False) -> dict:
    """Sales invoices issued in the period: how many, how many were ever credited (an issued credit
    note points at them), how many have feedback and how many of those rated 4 or 5. One query."""
    credited = Invoice.objects.filter(original=OuterRef("pk"), kind=InvoiceKind.CREDIT_NOTE, status__in=BILLED)
    qs = Invoice.objects.filter(
        kind=InvoiceKind.INVOICE, status__in=BILLED, issue_date__gte=period.start, issue_date__lte=period.end
    )
    if currency:
        qs = qs.filter(currency=currency)
    if customer:
        qs = qs.filter(customer_id=customer)
    group = ["currency", "customer_id"] if by_customer else ["currency"]
    rows = (
        qs.annotate(was_credited=Exists(credited))
        .values(*group)
        .annotate(
            issued=Count("pk"),
            credited=Count("pk", filter=Q(was_credited=True)),
            responded=Count("feedback"),
            satisfied=Count("feedback", filter=Q(feedback__rating__gte=4)),
        )
        .order_by(*group)
    )
    out = {}
    for row in rows:
        row.setdefault("customer_id", None)
        out[_group_key(row, by_customer)] = {
            "invoices_issued": row["issued"],
            "invoice_accuracy": _ratio(row["issued"] - row["credited"], row["issued"], scale=100),
            "response_rate": _ratio(row["responded"], row["issued"], scale=100),
            "csat": _ratio(row["satisfied"], row["responded"], scale=100),
            "feedback_count": row["responded"],
        }
    return out


def penalties_collected(period: Period, *, currency=None, customer=None, by_customer=False) -> dict:
    """Payments received in the period and allocated to penalty invoices. One query."""
    qs = Allocation.objects.filter(
        invoice__kind=InvoiceKind.PENALTY, payment__received_on__gte=period.start, payment__received_on__lte=period.end
    )
    if currency:
        qs = qs.filter(invoice__currency=currency)
    if customer:
        qs = qs.filter(invoice__customer_id=customer)
    group = ["invoice__currency", "invoice__customer_id"] if by_customer else ["invoice__currency"]
    out = {}
    for row in qs.values(*group).annotate(total=Sum("amount")).order_by(*group):
        key = (row["invoice__currency"], row["invoice__customer_id"]) if by_customer else row["invoice__currency"]
        out[key] = {"penalties_collected": row["total"]}
    return out


# --- Orders: order-to-cash cycle time and entry speed (PostgreSQL percentiles) --------------------


def percentiles_available() -> bool:
    """percentile_cont is PostgreSQL's; on the embedded SQLite these figures are shown as n/a."""
    return connection.vendor == "postgresql"


def order_to_cash(period: Period, *, currency=None, customer=None, by_customer=False) -> dict:
    """Orders whose sales invoices are all paid, the last in the period: their number and the median
    and 90th percentile of days from confirmation to that payment. One query, PostgreSQL only."""
    if not percentiles_available():
        return {}
    scope, scope_params = _scope_sql("o", currency, customer)
    group = "currency, customer_id" if by_customer else "currency"
    tz = timezone.get_current_timezone_name()
    sql = f"""
        WITH paid AS ({_paid_on_sql()}),
        candidates AS (
          SELECT DISTINCT ol.order_id FROM paid
          JOIN {_t(Invoice)} i ON i.id = paid.invoice_id
          JOIN {_t(InvoiceLine)} il ON il.invoice_id = i.id
          JOIN {_t(OrderLine)} ol ON ol.id = il.order_line_id
          WHERE i.status = %s AND i.kind = %s
        ),
        per_order AS (
          SELECT o.currency, o.customer_id,
                 MAX(pd.paid_on) - (o.confirmed_at AT TIME ZONE %s)::date AS days,
                 BOOL_AND(i.status = %s) AS all_paid, MAX(pd.paid_on) AS paid_on
          FROM candidates c
          JOIN {_t(Order)} o ON o.id = c.order_id
          JOIN {_t(OrderLine)} ol ON ol.order_id = o.id
          JOIN {_t(InvoiceLine)} il ON il.order_line_id = ol.id
          JOIN {_t(Invoice)} i ON i.id = il.invoice_id AND i.kind = %s AND i.status <> %s
          LEFT JOIN ({_paid_on_sql("'0001-01-01'::date", "'9999-12-31'::date")}) pd ON pd.invoice_id = i.id
          WHERE o.confirmed_at IS NOT NULL {scope}
          GROUP BY o.id
        )
        SELECT {group}, COUNT(*) AS orders,
          percentile_cont(0.5) WITHIN GROUP (ORDER BY days) AS median,
          percentile_cont(0.9) WITHIN GROUP (ORDER BY days) AS p90
        FROM per_order WHERE all_paid AND paid_on BETWEEN %s AND %s
        GROUP BY {group}
    """  # noqa: S608 (only table names and fixed fragments are formatted in)
    params = [
        period.start,
        period.end,
        InvoiceStatus.PAID,
        InvoiceKind.INVOICE,
        tz,
        InvoiceStatus.PAID,
        InvoiceKind.INVOICE,
        InvoiceStatus.VOID,
        *scope_params,
        period.start,
        period.end,
    ]
    out = {}
    for row in _fetch(sql, params):
        row.setdefault("customer_id", None)
        out[_group_key(row, by_customer)] = {
            "o2c_orders": row["orders"],
            "o2c_median_days": _q(row["median"], "0.1"),
            "o2c_p90_days": _q(row["p90"], "0.1"),
        }
    return out


def order_entry(period: Period) -> dict:
    """Orders confirmed in the period whose entry was timed (entry start → confirmation): overall,
    per channel and per clerk, the number, the median seconds and orders per clerk-hour (orders /
    hours spent entering them). One query with grouping sets, PostgreSQL only; None elsewhere."""
    if not percentiles_available():
        return {"overall": None, "channels": [], "clerks": []}
    tz = timezone.get_current_timezone()
    start = timezone.make_aware(datetime.combine(period.start, time.min), tz)
    end = start + timedelta(days=period.days)
    user_table = connection.ops.quote_name(Order._meta.get_field("created_by").related_model._meta.db_table)
    sql = f"""
        WITH timed AS (
          SELECT o.channel, o.created_by_id,
                 EXTRACT(EPOCH FROM o.confirmed_at - o.entry_started_at) AS seconds
          FROM {_t(Order)} o
          WHERE o.confirmed_at >= %s AND o.confirmed_at < %s AND o.entry_started_at IS NOT NULL
            AND o.confirmed_at >= o.entry_started_at
        )
        SELECT t.channel, t.created_by_id, GROUPING(t.channel) AS all_channels,
               GROUPING(t.created_by_id) AS all_clerks, MAX(u.username) AS username,
               MAX(TRIM(u.first_name || ' ' || u.last_name)) AS full_name, COUNT(*) AS orders,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY t.seconds) AS median, SUM(t.seconds) AS seconds
        FROM timed t LEFT JOIN {user_table} u ON u.id = t.created_by_id
        GROUP BY GROUPING SETS ((), (t.channel), (t.created_by_id))
    """  # noqa: S608 (only table names and fixed fragments are formatted in)
    overall, channels, clerks = None, [], []
    for row in _fetch(sql, [start, end]):
        figures = {
            "orders": row["orders"],
            "median_seconds": _q(row["median"], "0.1"),
            "orders_per_clerk_hour": _ratio(row["orders"] * 3600, row["seconds"], places="0.01"),
        }
        if row["all_channels"] and row["all_clerks"]:
            overall = figures if row["orders"] else None  # the empty grouping set gives a row of 0
        elif not row["all_channels"]:
            channels.append({"channel": row["channel"], **figures})
        else:
            name = row["full_name"] or row["username"] or "(no clerk)"
            clerks.append({"clerk_id": row["created_by_id"], "clerk": name, **figures})
    channels.sort(key=lambda r: r["channel"])
    clerks.sort(key=lambda r: (-r["orders"], r["clerk"]))
    return {"overall": overall, "channels": channels, "clerks": clerks}


# --- Cache version -------------------------------------------------------------------------------


def data_version() -> str:
    """Changes whenever a row the KPIs read is added or a business action is taken: the highest ids
    of invoices, settlements, orders, feedback and audit events (every state change writes one) and
    of the snapshots; plus the database's identity, so a recreated database starts afresh. One
    query of primary-key lookups."""
    from billing.models import AuditEvent
    from orders.models import OrderEvent

    from .models import Feedback, KpiSnapshot

    tables = [Invoice, Allocation, CreditApplication, Order, OrderEvent, Feedback, AuditEvent, KpiSnapshot]
    parts = [f"(SELECT MAX(id) FROM {_t(model)})" for model in tables]  # noqa: S608 (table names only)
    if connection.vendor == "postgresql":
        parts.append("(SELECT oid FROM pg_database WHERE datname = current_database())")
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(parts))
        row = cursor.fetchone()
    return f"{connection.settings_dict['NAME']}:{timezone.localdate()}:" + ":".join(map(str, row))


# --- Putting the families together -----------------------------------------------------------------


def _derive(rec: dict | None, sal: dict | None, days: int) -> dict:
    """The ratios of one currency (and customer) from its receivable and sales figures."""
    rec = rec or {"ar_end": ZERO, "ar_begin": ZERO, **dict.fromkeys(AGING_KEYS, ZERO)}
    sal = sal or {"sales": ZERO, "penalties_billed": ZERO, "months": []}
    ar_end, ar_begin, current, credit = rec["ar_end"], rec["ar_begin"], rec["aging_current"], sal["sales"]
    overdue = ar_end - current
    collectable = ar_begin + credit - current
    average_ar = (ar_begin + ar_end) / 2
    dso = _ratio(ar_end, credit, scale=days)
    best = _ratio(current, credit, scale=days)
    return {
        "open_receivables": ar_end,
        "overdue_receivables": overdue,
        "share_overdue": _ratio(overdue, ar_end, scale=100),
        **{k: rec[k] for k in AGING_KEYS},
        "credit_sales": credit,
        "dso": dso,
        "dso_countback": countback_dso(ar_end, sal["months"]),
        "best_possible_dso": best,
        "average_days_delinquent": None if dso is None or best is None else dso - best,
        "cei": _ratio(ar_begin + credit - ar_end, collectable, scale=100) if collectable > 0 else None,
        "ar_turnover": _ratio(credit, average_ar, places="0.01"),
        "penalties_billed": sal["penalties_billed"],
    }


_EMPTY = {
    "on_time_rate": None,
    "avg_days_to_pay": None,
    "invoices_paid": 0,
    "o2c_orders": 0,
    "o2c_median_days": None,
    "o2c_p90_days": None,
    "invoices_issued": 0,
    "invoice_accuracy": None,
    "response_rate": None,
    "csat": None,
    "feedback_count": 0,
    "penalties_collected": ZERO,
}


# The families a figure needs besides receivables and sales (always computed: cheap, and most
# ratios need both). A caller that shows only some figures skips the other queries.
_FAMILY_OF = {
    **dict.fromkeys(("on_time_rate", "avg_days_to_pay", "invoices_paid"), "payments"),
    **dict.fromkeys(("invoice_accuracy", "invoices_issued", "csat", "response_rate", "feedback_count"), "quality"),
    "penalties_collected": "penalties",
    **dict.fromkeys(("o2c_orders", "o2c_median_days", "o2c_p90_days"), "order_to_cash"),
}
FAMILIES = ("payments", "quality", "penalties", "order_to_cash")


def families_for(keys) -> tuple[str, ...]:
    return tuple(f for f in FAMILIES if any(_FAMILY_OF.get(k) == f for k in keys))


def kpis(
    period: Period,
    *,
    currency: str | None = None,
    customer: int | None = None,
    by_customer=False,
    families: tuple[str, ...] = FAMILIES,
) -> dict:
    """Every KPI of the period, per currency (`{"EUR": {key: value}}`), or per currency and customer
    (`{("EUR", 7): {...}}`) with `by_customer`. Six aggregate queries whatever the number of rows
    (fewer with `families`: the figures of a family left out stay at their empty value)."""
    scope = {"currency": currency, "customer": customer, "by_customer": by_customer}
    compute = {
        "payments": payments,
        "quality": quality,
        "penalties": penalties_collected,
        "order_to_cash": order_to_cash,
    }
    rec = receivables(period, **scope)
    sal = sales(period, **scope)
    others = [compute[name](period, **scope) for name in FAMILIES if name in families]
    out = {}
    for key in sorted(set(rec).union(sal, *others), key=str):
        figures = {**_EMPTY, **_derive(rec.get(key), sal.get(key), period.days)}
        for family in others:
            figures.update(family.get(key, {}))
        out[key] = figures
    return out


def customer_table(
    period: Period,
    *,
    currency: str | None = None,
    customer: int | None = None,
    limit: int | None = None,
    families: tuple[str, ...] = FAMILIES,
) -> list[dict]:
    """Per customer and currency: every KPI (or those of `families`). Largest receivables first."""
    rows = kpis(period, currency=currency, customer=customer, by_customer=True, families=families)
    names = dict(Customer.objects.filter(pk__in={c for _cur, c in rows}).values_list("pk", "name"))
    table = [
        {"currency": cur, "customer_id": cid, "customer": names.get(cid, f"#{cid}"), **figures}
        for (cur, cid), figures in rows.items()
    ]
    table.sort(key=lambda r: (-r["open_receivables"], -r["credit_sales"], r["customer"]))
    return table[:limit] if limit else table


def aging(period_end: date, *, currency=None, customer=None) -> dict:
    """The aging buckets at a day, per currency, with their total (= open receivables)."""
    rec = receivables(Period(period_end, period_end), currency=currency, customer=customer)
    return {cur: {"open_receivables": r["ar_end"], **{k: r[k] for k in AGING_KEYS}} for cur, r in rec.items()}


# --- Trend: monthly values, snapshots first ---------------------------------------------------------


def trend_months(end: date, months: int = 12) -> list[Period]:
    """The last `months` calendar months up to `end`, the last one to date."""
    first = end.replace(day=1)
    periods = []
    for k in range(months - 1, -1, -1):
        start = months_back(first, k)
        periods.append(Period(start, min(_month_end(start), end)))
    return periods


def trend(
    end: date, *, keys: tuple[str, ...], currency: str | None = None, customer: int | None = None, months: int = 12
) -> dict:
    """`{currency: {key: [(month_start, value), ...]}}` over the last months. A month's value is the
    snapshot of its last day (the month to that day) when that day was snapshotted (overall figures
    only); otherwise, and for the month in progress, it is computed: six queries a month."""
    from .models import KpiSnapshot

    periods = trend_months(end, months)
    today = timezone.localdate()
    stored_days: set[date] = set()
    values: dict = {}
    if customer is None:  # snapshots are kept for all customers together
        days = [p.end for p in periods if p.end < today]
        rows = KpiSnapshot.objects.filter(date__in=days, key__in=(*keys, SNAPSHOT_MARKER), customer__isnull=True)
        if currency:
            rows = rows.filter(currency__in=(currency, ""))
        for day, cur, key, value in rows.values_list("date", "currency", "key", "value"):
            if key == SNAPSHOT_MARKER:
                stored_days.add(day)
            else:
                values.setdefault(cur, {})[(day, key)] = value
    needed = families_for(keys)
    for period in periods:
        if period.end in stored_days:
            continue
        for cur, figures in kpis(period, currency=currency, customer=customer, families=needed).items():
            for key in keys:
                values.setdefault(cur, {})[(period.end, key)] = figures.get(key)
    return {
        cur: {key: [(p.start, by_day.get((p.end, key))) for p in periods] for key in keys}
        for cur, by_day in sorted(values.items())
    }


# --- The summary kept for the API's list endpoint and the nightly log ------------------------------


def open_receivables(*, currency: str | None = None) -> dict[str, Decimal]:
    """Open balances of issued invoices and penalties today, per currency."""
    qs = Invoice.objects.filter(status__in=OPEN_STATUSES, kind__in=RECEIVABLE_KINDS)
    if currency:
        qs = qs.filter(currency=currency)
    rows = qs.values("currency").annotate(total=Sum("gross_total") - Sum("amount_paid")).order_by("currency")
    return {r["currency"]: r["total"] for r in rows}


def summary(*, as_of: date | None = None, days: int = 90) -> dict:
    """Open and overdue receivables and standard DSO over the last `days` days, per currency."""
    as_of = as_of or timezone.localdate()
    figures = kpis(Period.last_days(days, as_of))
    return {
        "as_of": as_of,
        "dso_period_days": days,
        "currencies": [
            {
                "currency": cur,
                "open_receivables": f["open_receivables"],
                "overdue_receivables": f["overdue_receivables"],
                "dso": f["dso"],
            }
            for cur, f in figures.items()
        ],
    }
