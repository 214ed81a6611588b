"""The dashboard's filters: period, currency, customer."""

from datetime import timedelta

from django import forms
from django.utils import timezone

from billing.forms import BootstrapForm
from billing.models import Customer

from .selectors import Period, months_back

PERIODS = [
    ("30", "Last 30 days"),
    ("90", "Last 90 days"),
    ("365", "Last 12 months"),
    ("month", "This month to date"),
    ("last-month", "Last month"),
    ("quarter", "This quarter to date"),
]
DEFAULT_PERIOD = "90"


def period_for(choice: str, end) -> Period:
    """The period a filter choice stands for, ending on `end` (or on the month before it)."""
    if choice == "month":
        return Period.month_to_date(end)
    if choice == "last-month":
        last = end.replace(day=1) - timedelta(days=1)
        return Period(last.replace(day=1), last)
    if choice == "quarter":
        return Period(end.replace(month=(end.month - 1) // 3 * 3 + 1, day=1), end)
    if choice == "365":
        return Period(months_back(end, 12) + timedelta(days=1), end)
    return Period.last_days(int(choice), end)


class KpiFilterForm(BootstrapForm):
    period = forms.ChoiceField(choices=PERIODS, required=False, initial=DEFAULT_PERIOD)
    end = forms.DateField(
        required=False,
        label="As of",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        input_formats=["%Y-%m-%d"],
        help_text="Last day of the period; today when empty.",
    )
    currency = forms.ChoiceField(required=False)
    # Chosen from the customer table (a select of every customer would be thousands of options).
    customer = forms.ModelChoiceField(queryset=Customer.objects.all(), required=False, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The customers' currencies: a short table, where invoices would be a scan of millions of rows.
        currencies = Customer.objects.order_by("currency").values_list("currency", flat=True).distinct()
        self.fields["currency"].choices = [("", "All currencies"), *((c, c) for c in currencies)]

    def clean_end(self):
        end = self.cleaned_data.get("end")
        if end and end > timezone.localdate():
            raise forms.ValidationError("Choose today or a day before: the future has no figures yet.")
        return end

    def values(self) -> dict:
        """The valid filters, defaults for the rest (an invalid field shows its error and is ignored)."""
        data = self.cleaned_data if self.is_bound and self.is_valid() else {}
        if self.is_bound and not self.is_valid():
            data = {k: v for k, v in self.cleaned_data.items() if k not in self.errors}
        end = data.get("end") or timezone.localdate()
        choice = data.get("period") or DEFAULT_PERIOD
        customer = data.get("customer")
        return {
            "period": period_for(choice, end),
            "choice": choice,
            "end": end,
            "end_given": bool(data.get("end")),  # no end day: the period follows today
            "currency": data.get("currency") or None,
            "customer": customer,
        }
