"""The KPI dashboard, its CSV exports, the drill-down to the invoice list, the API, and the
snapshots (nightly task, backfill command, trend reading them)."""

import csv
import io
import re
import threading
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing.selectors import aging_due_range
from kpis import selectors, services, tasks
from kpis.models import KpiSnapshot
from tests.conftest import forget_kpi_figures
from tests.factories import CustomerFactory
from tests.test_kpis import Ledger, build_ledger

D = Decimal
MARCH_QUERY = {"period": "last-month", "end": "2026-04-15"}  # last month before 15 April: March


@pytest.fixture
def ledger(db):
    return build_ledger()


def money(amount: Decimal) -> str:
    return f"{amount:,.2f}"


# --- Dashboard ---------------------------------------------------------------------------------------


def test_dashboard_shows_the_period_figures_and_the_change_against_the_previous_one(staff, ledger):
    html = staff.get(reverse("kpi-dashboard"), MARCH_QUERY).content.decode()
    assert "1 Mar 2026 – 31 Mar 2026" in html and "compared with 1 Feb 2026 – 28 Feb 2026" in html  # noqa: RUF001
    open_tile = html[html.index('data-testid="kpi-open-EUR"') :][:1200]
    assert money(D("2550.00")) in open_tile
    # On 28 Feb 2950 were open: 2550 is 400 less, -13.6 %, and less owed is neither good nor bad news.
    assert "-13.6 %" in open_tile and "kpi-change-neutral" in open_tile
    dso_tile = html[html.index('data-testid="kpi-dso-EUR"') :][:1200]
    assert "43.0" in dso_tile and "45.2" in dso_tile  # standard and countback
    # Each aging bucket links to the invoice list filtered to it.
    assert 'href="/invoices/?bucket=31-60&amp;currency=EUR"' in html
    assert money(D("900.00")) in html[html.index('data-testid="aging-EUR"') :][:4000]
    # The USD customer has its own section; the customer table lists all three.
    assert 'data-testid="section-USD"' in html
    table = html[html.index('data-testid="customer-table"') :]
    assert table.index("Alpha") < table.index("Gamma") < table.index("Beta")  # 2200 EUR, 700 USD, 350 EUR


def test_dashboard_filters_to_one_customer_and_currency(staff, ledger):
    html = staff.get(reverse("kpi-dashboard"), {**MARCH_QUERY, "customer": ledger["b"].pk}).content.decode()
    tile = html[html.index('data-testid="kpi-open-EUR"') :][:1200]
    assert money(D("350.00")) in tile
    assert 'data-testid="section-USD"' not in html and 'data-testid="customer-table"' not in html
    assert f"customer={ledger['b'].pk}" in html  # the drill-down keeps the customer
    usd = staff.get(reverse("kpi-dashboard"), {**MARCH_QUERY, "currency": "USD"}).content.decode()
    assert 'data-testid="section-EUR"' not in usd and 'data-testid="section-USD"' in usd


def test_bad_filters_show_inline_errors_and_the_defaults(staff, ledger):
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    response = staff.get(reverse("kpi-dashboard"), {"period": "forever", "end": tomorrow, "customer": "999999"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Select a valid choice" in html and "the future has no figures yet" in html
    assert f"{(date.today() - timedelta(days=89)).strftime('%-d %b %Y')} – " in html  # noqa: RUF001


def test_dashboard_query_count_does_not_grow_with_rows(staff, ledger, django_assert_max_num_queries):
    """Every figure is an aggregate: ten more customers with invoices add no query. The past months of
    the trend come from their snapshots, as the nightly task leaves them."""
    for k in range(1, 12):
        month_end = selectors.months_back(date(2026, 4, 1), k - 1) - timedelta(days=1)
        services.kpi_snapshot_store(day=month_end)
    with CaptureQueriesContext(connection) as small:
        staff.get(reverse("kpi-dashboard"), MARCH_QUERY)
    forget_kpi_figures()  # computed afresh, not served from the figures stored by the first view
    led = Ledger()
    led.n = 500
    for k in range(10):
        customer = CustomerFactory()
        invoice = led.invoice(customer, date(2026, 3, 1 + k), date(2026, 3, 20), 100 + k)
        led.pay(invoice, 50, date(2026, 3, 25))
    with django_assert_max_num_queries(len(small.captured_queries)):
        html = staff.get(reverse("kpi-dashboard"), MARCH_QUERY).content.decode()
    assert html.count("<tr>") > 10
    # Pinned: session and user (2), data version (1), this period and the previous one (6 + 6), the
    # trend (snapshots 1, its current month's receivables, sales and payments 3), the customer table
    # (the same 3 grouped per customer, their names 1), entry speed, work queue (2), overdue list,
    # audit tile, currencies of the filter (1 each).
    assert len(small.captured_queries) <= 29, len(small.captured_queries)


def test_csv_exports_carry_the_dashboard_tables(staff, ledger):
    def rows(table, **extra):
        response = staff.get(reverse("kpi-export", args=[table]), {**MARCH_QUERY, **extra})
        assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
        return list(csv.DictReader(io.StringIO(response.content.decode())))

    aging = {r["currency"]: r for r in rows("aging")}
    assert aging["EUR"]["aging_1_30"] == "900.00" and aging["EUR"]["open_receivables"] == "2550.00"
    summary = {r["currency"]: r for r in rows("summary")}
    assert summary["EUR"]["dso"] == "43.0" and summary["EUR"]["cei"] == "60.7"
    customers = {r["customer"]: r for r in rows("customers")}
    assert customers["Beta"]["dso"] == "108.5" and set(customers) == {"Alpha", "Beta", "Gamma"}
    trend = [r for r in rows("trend", currency="EUR") if r["month"] == "2026-03-01"]
    assert trend[0]["open_receivables"] == "2550.00"
    assert rows("entry")[:1] == [] or rows("entry")[0]["group"] == "all"
    assert staff.get(reverse("kpi-export", args=["secrets"])).status_code == 404


def test_drill_down_lists_the_invoices_of_a_bucket(staff, ledger):
    """Today every ledger invoice is long past due; the 90+ bucket holds the open EUR items and their
    balances add up to the aging figure of today."""
    today = date.today()
    buckets = selectors.aging(today)["EUR"]
    html = staff.get(reverse("invoice-list"), {"bucket": "90-plus", "currency": "EUR"}).content.decode()
    for name in ("I2", "I3", "I4", "J2", "J3"):
        assert ledger[name].number in html, name
    for name in ("I1", "I5", "P1", "J1", "K1"):  # paid, or in USD
        assert ledger[name].number not in html, name
    assert buckets["aging_over_90"] == D("2050.00") == buckets["open_receivables"]
    empty = staff.get(reverse("invoice-list"), {"bucket": "1-30", "currency": "EUR"}).content.decode()
    assert ledger["J2"].number not in empty


def test_bucket_due_ranges_agree_with_the_kpi_buckets():
    as_of = date(2026, 3, 31)
    assert aging_due_range("current", as_of) == (as_of, None)
    assert aging_due_range("1-30", as_of) == (date(2026, 3, 1), date(2026, 3, 30))
    assert aging_due_range("61-90", as_of) == (date(2025, 12, 31), date(2026, 1, 29))
    assert aging_due_range("90-plus", as_of) == (None, date(2025, 12, 30))
    assert set(selectors.AGING_SLUGS.values()) == {"current", "1-30", "31-60", "61-90", "90-plus"}


# --- API ----------------------------------------------------------------------------------------------


@pytest.fixture
def api(client, user):
    client.force_login(user)
    return client


def test_api_summary_aging_trend_and_per_customer(api, ledger):
    march = {"start": "2026-03-01", "end": "2026-03-31"}
    summary = api.get("/api/v1/kpis/summary/", march).json()
    eur = next(c for c in summary["currencies"] if c["currency"] == "EUR")
    assert eur["dso"] == "43.0" and eur["dso_countback"] == "45.2" and eur["aging_61_90"] == "300.00"
    # A calendar month is compared with the month before.
    assert summary["previous_period"] == {"start": "2026-02-01", "end": "2026-02-28", "days": 28}
    aging = api.get("/api/v1/kpis/aging/", {"end": "2026-03-31", "currency": "eur"}).json()
    assert aging == [
        {
            "currency": "EUR",
            "as_of": "2026-03-31",
            "open_receivables": "2550.00",
            "aging_current": "1100.00",
            "aging_1_30": "900.00",
            "aging_31_60": "0.00",
            "aging_61_90": "300.00",
            "aging_over_90": "250.00",
        }
    ]
    trend = api.get("/api/v1/kpis/trend/", {"end": "2026-03-31", "months": 3, "keys": "dso", "currency": "EUR"}).json()
    assert [p["month"] for p in trend[0]["points"]] == ["2026-01-01", "2026-02-01", "2026-03-01"]
    assert D(trend[0]["points"][-1]["value"]) == D("43.0")  # March is a whole month: the same 31 days
    rows = api.get("/api/v1/kpis/per-customer/", {**march, "customer": ledger["b"].pk}).json()["results"]
    assert [(r["customer"], r["dso"]) for r in rows] == [("Beta", "108.5")]
    pages = api.get("/api/v1/kpis/per-customer/", {**march, "page_size": 2}).json()
    assert pages["count"] == 3 and [r["customer"] for r in pages["results"]] == ["Alpha", "Gamma"]


@pytest.mark.parametrize(
    "params, field",
    [
        ({"start": "2026-04-01", "end": "2026-03-01"}, "start"),
        ({"end": "2999-01-01"}, "end"),
        ({"currency": "EURO"}, "currency"),
        ({"customer": "999999"}, "customer"),
        ({"start": "yesterday"}, "start"),
        ({"start": "2020-01-01", "end": "2026-01-01"}, "start"),
    ],
)
def test_api_bad_queries_are_400_with_the_field(api, db, params, field):
    response = api.get("/api/v1/kpis/summary/", params)
    assert response.status_code == 400
    assert field in str(response.json())


def test_api_needs_a_login(client, db):
    assert client.get("/api/v1/kpis/summary/").status_code in (401, 403)


# --- Snapshots ----------------------------------------------------------------------------------------


def test_snapshot_stores_the_month_to_date_and_a_rerun_replaces_it(ledger):
    written = services.kpi_snapshot_store(day=date(2026, 3, 31))
    rows = KpiSnapshot.objects.filter(date=date(2026, 3, 31), customer__isnull=True)
    assert rows.count() == written
    eur = dict(rows.filter(currency="EUR").values_list("key", "value"))
    assert eur["dso"] == D("43.0") and eur["open_receivables"] == D("2550.00") and eur["cei"] == D("60.7")
    services.kpi_snapshot_store(day=date(2026, 3, 31))
    assert rows.count() == written  # replaced, not added


def test_backfill_command_is_idempotent_and_checks_its_range(ledger):
    out = io.StringIO()
    call_command("kpi_backfill", "--from", "2026-03-30", "--to", "2026-03-31", stdout=out)
    assert "2 day(s)" in out.getvalue()
    first = set(KpiSnapshot.objects.values_list("date", "currency", "key", "value"))
    call_command("kpi_backfill", "--from", "2026-03-30", "--to", "2026-03-31", stdout=io.StringIO())
    assert set(KpiSnapshot.objects.values_list("date", "currency", "key", "value")) == first
    assert {d for d, *_ in first} == {date(2026, 3, 30), date(2026, 3, 31)}
    with pytest.raises(CommandError, match="ends before it starts"):
        call_command("kpi_backfill", "--from", "2026-03-31", "--to", "2026-03-01")
    with pytest.raises(CommandError, match="not a date"):
        call_command("kpi_backfill", "--from", "31/03/2026", "--to", "2026-03-31")


def test_the_database_refuses_a_second_overall_row_for_a_day(ledger):
    from django.db import IntegrityError, transaction

    KpiSnapshot.objects.create(date=date(2026, 3, 31), currency="EUR", key="dso", value=D("1"))
    with pytest.raises(IntegrityError), transaction.atomic():
        KpiSnapshot.objects.create(date=date(2026, 3, 31), currency="EUR", key="dso", value=D("2"))
    c = ledger["a"]
    KpiSnapshot.objects.create(date=date(2026, 3, 31), currency="EUR", key="dso", customer=c, value=D("3"))
    with pytest.raises(IntegrityError), transaction.atomic():
        KpiSnapshot.objects.create(date=date(2026, 3, 31), currency="EUR", key="dso", customer=c, value=D("4"))


def test_the_trend_reads_a_snapshot_when_there_is_one(ledger):
    """A snapshotted month end is read, not computed: plant a value no computation gives. Without a
    snapshot of that day (the marker row says the day was stored), the month is computed."""
    end = date(2026, 4, 15)
    computed = selectors.trend(end, keys=("dso",), currency="EUR", months=2)["EUR"]["dso"]
    assert computed == [(date(2026, 3, 1), D("43.0")), (date(2026, 4, 1), computed[1][1])]
    services.kpi_snapshot_store(day=date(2026, 3, 31))
    KpiSnapshot.objects.filter(date=date(2026, 3, 31), currency="EUR", key="dso").update(value=D("99.9"))
    stored = selectors.trend(end, keys=("dso",), currency="EUR", months=2)["EUR"]["dso"]
    assert stored[0] == (date(2026, 3, 1), D("99.9"))


def test_nightly_task_snapshots_yesterday_and_the_audit_keeps_its_result(db):
    CustomerFactory()
    Ledger().invoice(CustomerFactory(), date.today() - timedelta(days=3), date.today(), 10)
    assert tasks.kpi_snapshot_nightly.apply().get() > 0
    yesterday = date.today() - timedelta(days=1)
    assert KpiSnapshot.objects.filter(date=yesterday, currency="EUR", key="open_receivables").get().value == D("10")
    tasks.otc_audit_nightly.apply().get()
    audit = KpiSnapshot.objects.get(key=services.AUDIT_KEY)
    assert audit.date == date.today() and audit.value is not None


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="the advisory lock is PostgreSQL's")
def test_concurrent_snapshot_writers_of_the_same_day_do_not_collide():
    """The nightly task and a backfill storing the same day at once: both succeed, one set of rows."""
    customer = CustomerFactory()
    Ledger().invoice(customer, date(2026, 3, 2), date(2026, 4, 1), 100)
    errors, barrier = [], threading.Barrier(4)

    def store():
        try:
            barrier.wait()
            services.kpi_snapshot_store(day=date(2026, 3, 31))
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    rows = KpiSnapshot.objects.filter(date=date(2026, 3, 31))
    assert rows.count() == rows.values("currency", "key").distinct().count() > 0


def test_the_dashboard_shows_a_payment_once_its_figures_are_refreshed(
    staff, ledger, monkeypatch, django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    """The page never recomputes every figure inline once they were computed: after a payment it
    shows the stored figures with their time and queues one refresh; once it ran, the payment shows."""
    queued = []  # refreshes of the filter's figures (the work-queue counts are refreshed likewise)
    monkeypatch.setattr(tasks.kpi_figures_refresh, "delay", lambda name, params: queued.append((name, params)))

    def page():
        with django_capture_on_commit_callbacks(execute=True):
            return staff.get(reverse("kpi-dashboard"), {"currency": "USD"}).content.decode()

    def open_tile(html):
        return html[html.index('data-testid="kpi-open-USD"') :][:600]

    first = page()
    assert money(D("700.00")) in open_tile(first) and "refreshing" not in first
    assert money(D("700.00")) in open_tile(page()) and queued == []  # stored figures, still current
    Ledger().pay(ledger["K1"], 300, date.today())
    with django_assert_max_num_queries(10):  # session, user, filter, version, overdue list, audit: no figure
        stale = page()
    assert money(D("700.00")) in open_tile(stale)  # the stored figures, at once
    as_of = stale[stale.index('data-testid="figures-as-of"') :][:600]
    assert re.search(r"Figures as of \d\d:\d\d", as_of) and "Newer data exists: refreshing" in as_of
    assert sorted(name for name, _params in queued) == ["dashboard", "work"]
    page()
    assert len(queued) == 2  # refreshes are already queued: no second one
    for name, params in queued:
        tasks.kpi_figures_refresh.apply(args=[name, params])  # what the worker runs
    fresh = page()
    assert money(D("400.00")) in open_tile(fresh) and "refreshing" not in fresh
    assert len(queued) == 2


def test_the_status_note_says_when_the_refreshed_figures_are_ready(staff, ledger, monkeypatch):
    monkeypatch.setattr(tasks.kpi_figures_refresh, "delay", lambda *args: None)
    staff.get(reverse("kpi-dashboard"), {"currency": "USD"})
    status = reverse("kpi-status") + "?currency=USD"
    assert "show them" in staff.get(status).content.decode()
    Ledger().pay(ledger["K1"], 300, date.today())
    assert "refreshing" in staff.get(status).content.decode()
    usd = {"choice": "90", "end": None, "currency": "USD", "customer": None}
    tasks.kpi_figures_refresh.apply(args=["dashboard", usd])
    assert "show them" in staff.get(status).content.decode()


def test_without_percentiles_the_order_figures_read_n_a(staff, ledger, monkeypatch):
    """As on the embedded SQLite database: no percentile_cont, the rest is computed as usual."""
    monkeypatch.setattr(selectors, "percentiles_available", lambda: False)
    html = staff.get(reverse("kpi-dashboard"), MARCH_QUERY).content.decode()
    o2c = html[html.index('data-testid="kpi-o2c_median_days-EUR"') :][:800]
    assert "n/a" in o2c
    assert "medians need PostgreSQL" in html
    assert money(D("2550.00")) in html


def test_in_the_embedded_mode_the_refresh_runs_in_the_request(
    staff, ledger, settings, monkeypatch, django_capture_on_commit_callbacks
):
    """Without a worker (tasks eager, as on the embedded default) a stale view refreshes at once."""
    settings.CELERY_TASK_ALWAYS_EAGER = True  # and so is Celery's app there: a task runs where it is queued
    monkeypatch.setattr(tasks.kpi_figures_refresh, "delay", lambda *args: tasks.kpi_figures_refresh.apply(args=args))

    def page():
        with django_capture_on_commit_callbacks(execute=True):
            html = staff.get(reverse("kpi-dashboard"), {"currency": "USD"}).content.decode()
        return html, html[html.index('data-testid="kpi-open-USD"') :][:600]

    html, tile = page()
    assert money(D("700.00")) in tile
    Ledger().pay(ledger["K1"], 300, date.today())
    html, tile = page()
    assert money(D("400.00")) in tile and "refreshing" not in html
