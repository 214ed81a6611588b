"""Formatting of KPI values by unit, for the dashboard."""

from decimal import Decimal

from django import template
from django.template.defaultfilters import floatformat
from django.utils.html import format_html

register = template.Library()


def _seconds(value: Decimal) -> str:
    seconds = round(value)
    if seconds < 90:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@register.simple_tag
def kpi_value(value, unit: str, currency: str = "", na: str = "n/a"):
    """A KPI value with its unit; `na` (a grey dash or 'n/a') when the figure is undefined."""
    if value is None:
        return format_html('<span class="text-body-tertiary">{}</span>', na)
    if unit == "money":
        return format_html(
            '<span class="money">{}</span> <span class="currency">{}</span>', floatformat(value, "2g"), currency
        )
    if unit == "percent":
        return format_html('<span class="money">{}</span><span class="kpi-unit"> %</span>', floatformat(value, 1))
    if unit == "days":
        return format_html('<span class="money">{}</span><span class="kpi-unit"> days</span>', floatformat(value, 1))
    if unit == "times":
        return format_html('<span class="money">{}</span><span class="kpi-unit"> &times;</span>', floatformat(value, 2))
    if unit == "seconds":
        return format_html('<span class="money">{}</span>', _seconds(Decimal(value)))
    if unit == "rate":
        return format_html('<span class="money">{}</span><span class="kpi-unit"> / h</span>', floatformat(value, 1))
    return format_html('<span class="money">{}</span>', floatformat(value, "0g"))
