from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing import money

D = Decimal


@pytest.mark.parametrize(
    ("qty", "price", "discount", "expected"),
    [
        ("2", "149.90", "0", "299.80"),
        ("3", "32.50", "0", "97.50"),
        ("1.005", "1.00", "0", "1.01"),  # 1.005 rounds half-up, not to even
        ("0.333", "10.00", "0", "3.33"),
        ("7", "19.99", "15", "118.94"),  # 139.93 x 0.85 = 118.9405
        ("1", "0.05", "50", "0.03"),  # 0.025 -> 0.03 half-up
        ("10", "100", "100", "0.00"),
    ],
)
def test_line_net_rounds_half_up_to_cents(qty, price, discount, expected):
    assert money.line_net(D(qty), D(price), D(discount)) == D(expected)


def test_line_net_respects_currency_minor_unit():
    assert money.line_net(D("3"), D("333.5"), currency="JPY") == D("1001")
    assert money.line_net(D("1"), D("1.2345"), currency="KWD") == D("1.235")


def test_tax_is_rounded_once_per_rate_not_per_line():
    # Three lines of 0.10 at 5.5 %: per-line rounding would give 3 x 0.01 = 0.03;
    # EN 16931 rounds the sum once: 0.30 x 5.5 % = 0.0165 -> 0.02.
    lines = [money.TaxableLine(net=D("0.10"), rate=D("5.50"))] * 3
    result = money.totals(lines)
    assert result.tax == D("0.02")
    assert result.gross == D("0.32")


def test_totals_with_several_rates_hand_computed():
    lines = [
        money.TaxableLine(net=D("299.80"), rate=D("20.00")),
        money.TaxableLine(net=D("97.50"), rate=D("5.50"), category="reduced"),
        money.TaxableLine(net=D("50.00"), rate=D("0.00"), category="exempt"),
    ]
    result = money.totals(lines)
    assert result.net == D("447.30")
    assert [(b.rate, b.taxable, b.tax) for b in result.breakdown] == [
        (D("20.00"), D("299.80"), D("59.96")),
        (D("5.50"), D("97.50"), D("5.36")),
        (D("0.00"), D("50.00"), D("0.00")),
    ]
    assert result.tax == D("65.32")
    assert result.gross == D("512.62")


def test_empty_invoice_totals_zero():
    result = money.totals([])
    assert (result.net, result.tax, result.gross, result.breakdown) == (D("0.00"), D("0.00"), D("0.00"), ())


amounts = st.decimals(min_value=D("0"), max_value=D("99999.99"), places=2, allow_nan=False, allow_infinity=False)
rates = st.sampled_from([D("0.00"), D("5.50"), D("7.00"), D("10.00"), D("19.00"), D("20.00"), D("21.00")])


@given(st.lists(st.tuples(amounts, rates), max_size=40))
def test_totals_always_equal_the_sum_of_their_parts(lines):
    result = money.totals([money.TaxableLine(net=n, rate=r) for n, r in lines])
    assert result.net == sum((n for n, _ in lines), D("0"))
    assert result.net == sum((b.taxable for b in result.breakdown), D("0"))
    assert result.tax == sum((b.tax for b in result.breakdown), D("0"))
    assert result.gross == result.net + result.tax
    for b in result.breakdown:
        assert b.tax == money.quantize(b.taxable * b.rate / 100)
        assert b.tax.as_tuple().exponent == -2


@given(
    st.decimals(min_value=D("0.001"), max_value=D("9999.999"), places=3),
    st.decimals(min_value=D("0"), max_value=D("9999.99"), places=2),
    st.decimals(min_value=D("0"), max_value=D("100"), places=2),
)
def test_line_net_is_within_half_a_cent_of_the_exact_value(qty, price, discount):
    net = money.line_net(qty, price, discount)
    exact = qty * price * (100 - discount) / 100
    assert abs(net - exact) <= D("0.005")
    assert net >= 0
