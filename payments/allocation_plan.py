"""How a payment about to be recorded will be allocated: the plan the record-payment form previews
and then posts, so staff see exactly what happens before they save.

Four ways, in this order of precedence:
- amounts typed per invoice (`alloc_<invoice id>` fields): exactly those;
- one invoice chosen: up to its balance;
- the reference names open invoices of the customer (`payments.matching.find_invoice_numbers`):
  those, in the order named, up to their balances; the rest stays credit, as `payment_record`
  does with `match_reference`;
- otherwise: the customer's open invoices (never credit notes) oldest due first.
What the plan does not allocate stays on the payment as customer credit. `payment_record` checks
the plan again under its locks, so a balance that changed since the preview is refused, not
over-allocated.
"""

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django.utils import timezone

from billing.models import Customer
from invoicing.models import OPEN_STATUSES, Invoice, InvoiceKind

from .matching import find_invoice_numbers

ZERO = Decimal("0.00")
FIELD_PREFIX = "alloc_"


@dataclass
class PlanRow:
    invoice: Invoice
    amount: Decimal = ZERO
    typed: str = ""  # what staff typed in the row, echoed back into the input
    error: str = ""

    @property
    def left(self) -> Decimal:
        return self.invoice.balance - self.amount

    @property
    def overdue(self) -> bool:
        return self.invoice.due_date < timezone.localdate()


@dataclass
class AllocationPlan:
    mode: str  # "oldest", "invoice" or "manual"
    amount: Decimal | None
    currency: str
    rows: list[PlanRow] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def allocated(self) -> Decimal:
        return sum((r.amount for r in self.rows), ZERO)

    @property
    def credit_left(self) -> Decimal | None:
        return None if self.amount is None else self.amount - self.allocated

    @property
    def valid(self) -> bool:
        return not self.errors and not any(r.error for r in self.rows)

    def as_shown(self) -> dict[int, Decimal]:
        return {r.invoice.pk: r.amount for r in self.rows if r.amount > 0}

    def allocations(self) -> list[dict]:
        return [{"invoice": r.invoice, "amount": r.amount} for r in self.rows if r.amount > 0]


def open_invoices(customer: Customer, currency: str | None = None):
    qs = (
        Invoice.objects.filter(customer=customer, status__in=OPEN_STATUSES)
        .exclude(kind=InvoiceKind.CREDIT_NOTE)
        .order_by("due_date", "issue_date", "pk")
    )
    return qs.filter(currency=currency or customer.currency)


SHOWN_PREFIX = "shown_"


def shown_allocations(data) -> dict[int, Decimal] | None:
    """The allocation the preview showed when the form was posted (None: no preview was shown)."""
    if "shown_plan" not in data:
        return None
    shown = {}
    for key, value in data.items():
        if key.startswith(SHOWN_PREFIX) and key[len(SHOWN_PREFIX) :].isdigit():
            try:
                shown[int(key[len(SHOWN_PREFIX) :])] = Decimal(value)
            except InvalidOperation:
                continue
    return shown


def typed_amounts(data) -> dict[int, str]:
    """The per-invoice amounts in the posted or previewed form data, by invoice id."""
    typed = {}
    for key, value in data.items():
        if key.startswith(FIELD_PREFIX) and key[len(FIELD_PREFIX) :].isdigit() and str(value).strip():
            typed[int(key[len(FIELD_PREFIX) :])] = str(value).strip()
    return typed


def allocation_plan(
    *,
    customer: Customer,
    amount: Decimal | None,
    invoice: Invoice | None = None,
    typed: dict[int, str] | None = None,
    reference: str = "",
) -> AllocationPlan:
    """The allocation of `amount` to the customer's open invoices (see the module docstring)."""
    invoices = list(open_invoices(customer))
    typed = typed or {}
    by_number = {i.number: i for i in invoices}
    named = [by_number[n] for n in find_invoice_numbers(reference) if n in by_number]
    if typed:
        mode = "manual"
    elif invoice is not None:
        mode = "invoice"
    else:
        mode = "reference" if named else "oldest"
    rows = [PlanRow(invoice=i) for i in invoices]
    plan = AllocationPlan(mode=mode, amount=amount, currency=customer.currency, rows=rows)
    if mode == "manual":
        known = {i.pk for i in invoices}
        if set(typed) - known:
            plan.errors.append("An amount was typed for an invoice that is not open for this customer.")
        for row in plan.rows:
            raw = typed.get(row.invoice.pk)
            if raw is None:
                continue
            row.typed = raw
            try:
                value = Decimal(raw.replace(",", ""))
            except InvalidOperation:
                row.error = "Not an amount."
                continue
            if not value.is_finite() or value < 0 or value != value.quantize(Decimal("0.01")):
                row.error = "Use a positive amount with at most 2 decimals."
            elif value > row.invoice.balance:
                row.error = f"More than the balance of {row.invoice.balance:,.2f}."
            else:
                row.amount = value
        if amount is not None and plan.allocated > amount:
            plan.errors.append(
                f"The amounts allocated ({plan.allocated:,.2f}) are more than the payment ({amount:,.2f})."
            )
        return plan
    if amount is None:
        return plan
    if mode == "invoice":
        for row in plan.rows:
            if row.invoice.pk == invoice.pk:
                row.amount = min(amount, row.invoice.balance)
        return plan
    if mode == "reference":
        rows = {row.invoice.pk: row for row in plan.rows}
        left = amount
        for named_invoice in named:
            row = rows[named_invoice.pk]
            row.amount = max(min(left, row.invoice.balance), ZERO)
            left -= row.amount
        return plan
    left = amount
    for row in plan.rows:
        if left <= 0:
            break
        row.amount = min(left, row.invoice.balance)
        left -= row.amount
    return plan
