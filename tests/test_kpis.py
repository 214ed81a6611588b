"""Each KPI on a small hand-built ledger whose answer is worked out in the comments, the aging buckets
against open receivables, and the order figures (cycle time, entry speed) through the services."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection

from invoicing.models import CreditApplication, Invoice, InvoiceKind, InvoiceStatus
from kpis import selectors
from kpis.models import Feedback
from kpis.selectors import Period
from orders.models import Order, OrderChannel
from payments import services as payments
from payments.models import Allocation, Payment
from tests.factories import CustomerFactory, UserFactory

D = Decimal
MARCH = Period(date(2026, 3, 1), date(2026, 3, 31))  # 31 days; the day before it starts: 28 Feb


class Ledger:
    """Invoices, payments and credits written as rows, the way the services leave them."""

    def __init__(self):
        self.n = 0

    def invoice(self, customer, issued, due, gross, *, kind=InvoiceKind.INVOICE, currency="EUR", original=None):
        self.n += 1
        return Invoice.objects.create(
            kind=kind,
            series={"invoice": "INV", "penalty": "PEN", "credit_note": "CN"}[kind],
            number=f"T-{self.n:04d}",
            customer=customer,
            status=InvoiceStatus.ISSUED,
            issue_date=issued,
            due_date=due,
            currency=currency,
            net_total=D(gross),
            gross_total=D(gross),
            original=original,
        )

    def pay(self, invoice, amount, received_on):
        self.n += 1
        payment = Payment.objects.create(
            number=f"TP-{self.n:04d}",
            customer=invoice.customer,
            method="bank_transfer",
            amount=D(amount),
            currency=invoice.currency,
            received_on=received_on,
            allocated_amount=D(amount),
        )
        Allocation.objects.create(payment=payment, invoice=invoice, amount=D(amount))
        self._settle(invoice, amount)

    def credit(self, invoice, amount, issued):
        note = self.invoice(invoice.customer, issued, issued, amount, kind=InvoiceKind.CREDIT_NOTE, original=invoice)
        CreditApplication.objects.create(credit_note=note, invoice=invoice, amount=D(amount))
        Invoice.objects.filter(pk=note.pk).update(amount_paid=D(amount), status=InvoiceStatus.PAID)
        self._settle(invoice, amount)

    def _settle(self, invoice, amount):
        invoice.refresh_from_db()
        paid = invoice.amount_paid + D(amount)
        status = InvoiceStatus.PAID if paid == invoice.gross_total else InvoiceStatus.PARTIALLY_PAID
        Invoice.objects.filter(pk=invoice.pk).update(amount_paid=paid, status=status)


@pytest.fixture
def ledger(db):
    return build_ledger()


def build_ledger():
    """Customer A and B in EUR, C in USD. Balances at 31 March (aging: days past due = 31 Mar - due):
    I1  A  issued 10 Jan due  9 Feb  1000  paid  5 Mar                      -> 0
    I2  A  issued 15 Feb due 17 Mar   600  200 paid 20 Mar                  -> 400, 14 days: 1-30
    I3  A  issued 10 Mar due  9 Apr  1200  credit note of 200 on 12 Mar     -> 1000 current
    I4  A  issued  1 Dec due 31 Dec   300  open                             -> 300, 90 days: 61-90
    I5  A  issued  2 Mar due  2 Mar   500  paid 2 Apr (after the period)    -> 500, 29 days: 1-30
    P1  A  penalty 15 Mar due 15 Mar   40  paid 25 Mar                      -> 0
    J1  B  issued  1 Feb due  3 Mar   800  paid 3 Mar                       -> 0
    J2  B  issued 20 Mar due 19 Apr   100  open                             -> 100 current
    J3  B  issued  1 Oct due 31 Oct   250  open                             -> 250, 151 days: 90+
    K1  C  issued  5 Mar due  4 Apr   700  open (USD)                       -> 700 current
    Feedback: I3 rated 5, J2 rated 3."""
    a, b, c = CustomerFactory(name="Alpha"), CustomerFactory(name="Beta"), CustomerFactory(name="Gamma", currency="USD")
    led = Ledger()
    inv = {}
    inv["I1"] = led.invoice(a, date(2026, 1, 10), date(2026, 2, 9), 1000)
    inv["I2"] = led.invoice(a, date(2026, 2, 15), date(2026, 3, 17), 600)
    inv["I3"] = led.invoice(a, date(2026, 3, 10), date(2026, 4, 9), 1200)
    inv["I4"] = led.invoice(a, date(2025, 12, 1), date(2025, 12, 31), 300)
    inv["I5"] = led.invoice(a, date(2026, 3, 2), date(2026, 3, 2), 500)
    inv["P1"] = led.invoice(a, date(2026, 3, 15), date(2026, 3, 15), 40, kind=InvoiceKind.PENALTY)
    inv["J1"] = led.invoice(b, date(2026, 2, 1), date(2026, 3, 3), 800)
    inv["J2"] = led.invoice(b, date(2026, 3, 20), date(2026, 4, 19), 100)
    inv["J3"] = led.invoice(b, date(2025, 10, 1), date(2025, 10, 31), 250)
    inv["K1"] = led.invoice(c, date(2026, 3, 5), date(2026, 4, 4), 700, currency="USD")
    led.pay(inv["I1"], 1000, date(2026, 3, 5))
    led.pay(inv["I2"], 200, date(2026, 3, 20))
    led.credit(inv["I3"], 200, date(2026, 3, 12))
    led.pay(inv["I5"], 500, date(2026, 4, 2))
    led.pay(inv["P1"], 40, date(2026, 3, 25))
    led.pay(inv["J1"], 800, date(2026, 3, 3))
    Feedback.objects.create(invoice=inv["I3"], customer=a, rating=5, source="link")
    Feedback.objects.create(invoice=inv["J2"], customer=b, rating=3, source="call")
    return {"a": a, "b": b, "c": c, **inv}


def test_receivables_and_aging_at_the_end_of_the_period(ledger):
    eur = selectors.kpis(MARCH)["EUR"]
    # 400 + 1000 + 300 + 500 + 100 + 250: I5 counts, its payment came after 31 March.
    assert eur["open_receivables"] == D("2550.00")
    assert eur["aging_current"] == D("1100.00")  # I3 1000 + J2 100
    assert eur["aging_1_30"] == D("900.00")  # I2 400 + I5 500
    assert eur["aging_31_60"] == D("0.00")
    assert eur["aging_61_90"] == D("300.00")  # I4, exactly 90 days past due
    assert eur["aging_over_90"] == D("250.00")  # J3
    assert sum(eur[k] for k in selectors.AGING_KEYS) == eur["open_receivables"]
    assert eur["overdue_receivables"] == D("1450.00")  # 2550 - 1100
    assert eur["share_overdue"] == D("56.9")  # 1450 / 2550 = 56.86 %


def test_dso_standard_best_possible_delinquent_and_countback(ledger):
    eur = selectors.kpis(MARCH)["EUR"]
    # Credit sales: I3 1200 + I5 500 + P1 40 + J2 100 = 1840 (the credit note is not a sale).
    assert eur["credit_sales"] == D("1840.00")
    assert eur["dso"] == D("43.0")  # 2550 / 1840 x 31 = 42.96
    assert eur["best_possible_dso"] == D("18.5")  # current 1100 / 1840 x 31 = 18.53
    assert eur["average_days_delinquent"] == D("24.5")  # 43.0 - 18.5
    # Countback: March's 1840 is covered (31 days, 710 left); February sold I2 600 + J1 800 = 1400,
    # 710 of it is 28 x 710 / 1400 = 14.2 days: 45.2.
    assert eur["dso_countback"] == D("45.2")


def test_cei_and_turnover_use_receivables_on_the_day_before_the_period(ledger):
    eur = selectors.kpis(MARCH)["EUR"]
    # Open on 28 Feb: I1 1000 + I2 600 + I4 300 + J1 800 + J3 250 = 2950 (payments of March added back).
    # CEI = (2950 + 1840 - 2550) / (2950 + 1840 - 1100) = 2240 / 3690 = 60.70 %
    assert eur["cei"] == D("60.7")
    # Turnover = 1840 / ((2950 + 2550) / 2) = 0.669
    assert eur["ar_turnover"] == D("0.67")


def test_payment_behaviour_of_invoices_paid_in_the_period(ledger):
    eur = selectors.kpis(MARCH)["EUR"]
    # Paid in March: I1 on 5 Mar (due 9 Feb: late, 54 days after 10 Jan) and J1 on 3 Mar (due that
    # day: on time, 30 days after 1 Feb). I5 was paid in April; P1 is a penalty, not a sale.
    assert eur["invoices_paid"] == 2
    assert eur["on_time_rate"] == D("50.0")
    assert eur["avg_days_to_pay"] == D("42.0")  # (54 + 30) / 2
    april = selectors.kpis(Period(date(2026, 4, 1), date(2026, 4, 30)))["EUR"]
    assert april["invoices_paid"] == 1  # I5, 2 Apr, due 2 Mar: late, 31 days
    assert april["on_time_rate"] == D("0.0")
    assert april["avg_days_to_pay"] == D("31.0")


def test_accuracy_feedback_and_penalties(ledger):
    eur = selectors.kpis(MARCH)["EUR"]
    # Sales invoices issued in March: I3, I5, J2; I3 was credited.
    assert eur["invoices_issued"] == 3
    assert eur["invoice_accuracy"] == D("66.7")  # 2 / 3
    assert eur["response_rate"] == D("66.7")  # I3 and J2 rated: 2 / 3
    assert eur["csat"] == D("50.0")  # one of the two rated 4 or 5
    assert eur["penalties_billed"] == D("40.00")
    assert eur["penalties_collected"] == D("40.00")


def test_per_customer_and_per_currency(ledger):
    rows = {(r["currency"], r["customer"]): r for r in selectors.customer_table(MARCH)}
    alpha, beta, gamma = rows[("EUR", "Alpha")], rows[("EUR", "Beta")], rows[("USD", "Gamma")]
    assert alpha["open_receivables"] == D("2200.00")  # 400 + 1000 + 300 + 500
    assert alpha["credit_sales"] == D("1740.00")  # 1200 + 500 + 40
    assert alpha["dso"] == D("39.2")  # 2200 / 1740 x 31 = 39.195
    assert beta["open_receivables"] == D("350.00")
    assert beta["dso"] == D("108.5")  # 350 / 100 x 31
    assert beta["on_time_rate"] == D("100.0")  # J1
    assert gamma["open_receivables"] == D("700.00") and gamma["dso"] == D("31.0")
    # The first rows are the largest receivables; the customers add up to the overall figure.
    assert [r["customer"] for r in selectors.customer_table(MARCH)][:1] == ["Alpha"]
    assert alpha["open_receivables"] + beta["open_receivables"] == selectors.kpis(MARCH)["EUR"]["open_receivables"]
    only_beta = selectors.kpis(MARCH, customer=ledger["b"].pk)
    assert list(only_beta) == ["EUR"] and only_beta["EUR"]["dso"] == D("108.5")
    assert list(selectors.kpis(MARCH, currency="USD")) == ["USD"]


def test_aging_buckets_sum_to_open_receivables_on_every_day(ledger):
    day = date(2025, 12, 1)
    while day <= date(2026, 4, 30):
        for cur, row in selectors.aging(day).items():
            assert sum(row[k] for k in selectors.AGING_KEYS) == row["open_receivables"], (day, cur)
        day += timedelta(days=7)
    # ... and agree with today's balances as stored on the invoices.
    today = selectors.aging(date.today())
    assert today["EUR"]["open_receivables"] == selectors.open_receivables()["EUR"] == D("2050.00")


def test_nothing_issued_gives_undefined_ratios_not_errors(db):
    assert selectors.kpis(MARCH) == {}
    customer = CustomerFactory()
    Ledger().invoice(customer, date(2026, 1, 5), date(2026, 2, 4), 100)
    eur = selectors.kpis(MARCH)["EUR"]
    assert eur["credit_sales"] == D("0.00")
    assert eur["dso"] is None and eur["best_possible_dso"] is None and eur["average_days_delinquent"] is None
    # Countback: March and February sold nothing (31 + 28 days), January's 100 is all still open (31): 90.
    assert eur["dso_countback"] == D("90.0")
    assert eur["on_time_rate"] is None and eur["csat"] is None and eur["invoice_accuracy"] is None


def test_countback_walks_months_and_stops_at_the_cap():
    months = [(D("100"), 31), (D("100"), 28), (D("100"), 31)]
    assert selectors.countback_dso(D("150"), months) == D("45.0")  # 31 + 28 x 50 / 100
    assert selectors.countback_dso(D("1000"), months) == D("90.0")  # all three months, more is not known
    assert selectors.countback_dso(D("0"), months) == D("0.0")


# --- Order-to-cash cycle time and order entry speed ------------------------------------------------


def _at(day: date, seconds: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, 9, 0, tzinfo=UTC) + timedelta(seconds=seconds)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="percentile_cont is PostgreSQL's")
def test_order_to_cash_median_and_p90(user, make_issued_invoice):
    """Three orders, invoiced and paid through the services: confirmed 1 Nov and paid 11 Nov (10
    days), confirmed 1 Nov paid 21 Nov (20), confirmed 1 Oct paid 28 Nov (58). A fourth is paid
    in December. Median 20; p90 by linear interpolation: 20 + 0.8 x (58 - 20) = 50.4."""
    customer = CustomerFactory()
    cases = [(date(2026, 11, 1), date(2026, 11, 11)), (date(2026, 11, 1), date(2026, 11, 21))]
    cases += [(date(2026, 10, 1), date(2026, 11, 28)), (date(2026, 10, 1), date(2026, 12, 1))]
    for confirmed, paid in cases:
        invoice = make_issued_invoice(customer, issue_date=confirmed)
        order = Order.objects.filter(lines__invoice_lines__invoice=invoice).distinct().get()
        Order.objects.filter(pk=order.pk).update(confirmed_at=_at(confirmed))
        payments.payment_record(
            customer=customer,
            method="bank_transfer",
            amount=invoice.gross_total,
            currency="EUR",
            received_on=paid,
            actor=user,
        )
    november = selectors.kpis(Period(date(2026, 11, 1), date(2026, 11, 30)))["EUR"]
    assert november["o2c_orders"] == 3
    assert november["o2c_median_days"] == D("20.0")
    assert november["o2c_p90_days"] == D("50.4")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="percentile_cont is PostgreSQL's")
def test_order_to_cash_waits_for_every_invoice_of_the_order(user, make_fulfilled_order):
    """An order billed on two invoices counts once both are paid, on the later payment."""
    from invoicing import services as invoicing

    customer = CustomerFactory()
    order = make_fulfilled_order(customer)
    draft = invoicing.invoice_create_from_orders(orders=[order], actor=user)
    # Move the second line to its own invoice: two invoices for one order.
    second = Invoice.objects.create(customer=customer, currency="EUR")
    line = draft.lines.order_by("position").last()
    type(line).objects.filter(pk=line.pk).update(invoice=second)
    from invoicing.services import _recompute_totals

    for inv in (draft, second):
        inv.refresh_from_db()
        _recompute_totals(inv, list(inv.lines.all()))
        inv.save()
    first = invoicing.invoice_issue(invoice=draft, actor=user, issue_date=date(2026, 11, 2))
    second = invoicing.invoice_issue(invoice=second, actor=user, issue_date=date(2026, 11, 2))
    Order.objects.filter(pk=order.pk).update(confirmed_at=_at(date(2026, 11, 1)))
    pay = {"customer": customer, "method": "bank_transfer", "currency": "EUR", "actor": user, "auto_allocate": False}
    p1 = payments.payment_record(amount=first.gross_total, received_on=date(2026, 11, 5), **pay)
    payments.payment_allocate(payment=p1, allocations=[{"invoice": first, "amount": first.gross_total}], actor=user)
    november = Period(date(2026, 11, 1), date(2026, 11, 30))
    assert selectors.kpis(november)["EUR"]["o2c_orders"] == 0  # the second invoice is still open
    p2 = payments.payment_record(amount=second.gross_total, received_on=date(2026, 11, 15), **pay)
    payments.payment_allocate(payment=p2, allocations=[{"invoice": second, "amount": second.gross_total}], actor=user)
    eur = selectors.kpis(november)["EUR"]
    assert eur["o2c_orders"] == 1 and eur["o2c_median_days"] == D("14.0")  # 1 Nov -> 15 Nov


@pytest.mark.skipif(connection.vendor != "postgresql", reason="percentile_cont is PostgreSQL's")
def test_order_entry_speed_per_channel_and_clerk(db):
    """Ann enters two orders in the browser in 60 s and 120 s, Bob one by API in 300 s; one order
    has no entry start and one was confirmed in October: neither counts.
    Overall median of 60, 120, 300 = 120. Browser: median 90. Ann: 2 orders in 180 s = 40 per hour;
    Bob: 1 in 300 s = 12 per hour; everyone: 3 in 480 s = 22.5 per hour."""
    ann = UserFactory(username="ann", first_name="Ann", last_name="Lee")
    bob = UserFactory(username="bob")
    customer = CustomerFactory()
    day = date(2026, 11, 10)

    numbers = iter(range(1, 100))

    def order(clerk, channel, seconds, *, started=True, on=day):
        return Order.objects.create(
            number=f"TSO-{next(numbers)}",
            customer=customer,
            order_date=on,
            currency="EUR",
            channel=channel,
            created_by=clerk,
            entry_started_at=_at(on) if started else None,
            confirmed_at=_at(on, seconds),
            status="confirmed",
        )

    order(ann, OrderChannel.UI, 60)
    order(ann, OrderChannel.UI, 120)
    order(bob, OrderChannel.API, 300)
    order(bob, OrderChannel.API, 10, started=False)
    order(ann, OrderChannel.UI, 5, on=date(2026, 10, 30))
    speed = selectors.order_entry(Period(date(2026, 11, 1), date(2026, 11, 30)))
    assert speed["overall"] == {"orders": 3, "median_seconds": D("120.0"), "orders_per_clerk_hour": D("22.50")}
    channels = {r["channel"]: r for r in speed["channels"]}
    assert channels["ui"]["median_seconds"] == D("90.0") and channels["api"]["orders"] == 1
    clerks = {r["clerk"]: r for r in speed["clerks"]}
    assert clerks["Ann Lee"]["orders_per_clerk_hour"] == D("40.00")
    assert clerks["bob"]["orders_per_clerk_hour"] == D("12.00")
    assert clerks["bob"]["median_seconds"] == D("300.0")


def test_trend_chart_geometry_leaves_gaps_and_scales_percentages_to_100():
    from kpis.charts import HEIGHT, LEFT, TOP, line_chart

    months = [date(2026, m, 1) for m in range(1, 5)]
    chart = line_chart(list(zip(months, [D("50"), None, D("100"), D("0")], strict=True)), unit="percent")
    # Three points, the missing month breaks the line: a new "M" starts after the gap.
    assert [p["value"] for p in chart.points] == [D("50"), D("100"), D("0")]
    assert chart.path.count("M") == 2 and chart.path.count("L") == 1
    plot_h = HEIGHT - TOP - 24
    assert chart.points[1]["y"] == TOP and chart.points[2]["y"] == TOP + plot_h  # 100 % at the top, 0 at the bottom
    assert chart.points[0]["x"] == LEFT and [t["label"] for t in chart.y_ticks] == ["0", "50", "100"]
    money = line_chart(list(zip(months, [D("1200"), D("3400"), D("800"), D("0")], strict=True)), unit="money")
    assert money.y_ticks[-1]["label"] == "5k"  # 3400 x 1.05 rounded up to a round 5000
    assert line_chart([(months[0], None)], unit="days").empty


def test_kpi_values_are_written_with_their_unit():
    from kpis.templatetags.kpi_tags import kpi_value

    assert "n/a" in kpi_value(None, "days")
    assert "1,234.50" in kpi_value(D("1234.5"), "money", "EUR") and "EUR" in kpi_value(D("1"), "money", "EUR")
    assert "43.0" in kpi_value(D("43"), "days") and "days" in kpi_value(D("43"), "days")
    assert "2 min 05 s" in kpi_value(D("125"), "seconds") and "45 s" in kpi_value(D("45"), "seconds")
    assert "1 h 01 min" in kpi_value(D("3660"), "seconds")


def test_past_balances_count_discounts_taken_and_ignore_reversed_payments(db):
    """Balances on the day before March (28 Feb), from the settlements dated after it added back:
    X  issued 1 Feb  1000  settled 5 Mar by 980 + 20 early-payment discount -> open 1000 on 28 Feb, 0 now
    Y  issued 1 Feb   500  paid 10 Mar by a check that bounced (reversed)   -> open 500 on 28 Feb and now
    Adding back 980 alone would give X 980 on 28 Feb; counting the bounced check would give Y 0 now
    and 500 on 28 Feb only by accident of the add-back."""
    from django.utils import timezone

    customer = CustomerFactory(name="Delta")
    led = Ledger()
    x = led.invoice(customer, date(2026, 2, 1), date(2026, 3, 3), 1000)
    y = led.invoice(customer, date(2026, 2, 1), date(2026, 3, 3), 500)
    led.pay(x, 980, date(2026, 3, 5))
    Allocation.objects.filter(invoice=x).update(discount=D("20.00"))
    Invoice.objects.filter(pk=x.pk).update(amount_paid=D("1000"), status=InvoiceStatus.PAID)
    led.pay(y, 500, date(2026, 3, 10))
    Allocation.objects.filter(invoice=y).update(reversed_at=timezone.now())  # the check bounced on 12 Mar
    Invoice.objects.filter(pk=y.pk).update(amount_paid=D("0"), status=InvoiceStatus.ISSUED)

    figures = selectors.receivables(MARCH)["EUR"]
    assert figures["ar_begin"] == D("1500.00")  # X 1000 + Y 500 on 28 Feb
    assert figures["ar_end"] == D("500.00")  # Y, open again after the reversal
