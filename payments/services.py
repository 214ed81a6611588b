from datetime import date
from decimal import Decimal

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from billing.errors import InvalidTransition, ValidationFailed
from billing.models import Customer, PaymentMethod
from billing.services import actor_user, audit_record
from invoicing.models import OPEN_STATUSES, Invoice, InvoiceKind
from invoicing.services import invoice_set_amount_paid

from . import discounts
from .matching import find_invoice_numbers
from .models import Allocation, Payment, PaymentSource, PaymentStatus, Refund

ZERO = Decimal("0")


def _offer(invoice: Invoice) -> discounts.DiscountTerms:
    """The early-payment discount frozen on a sales invoice's terms (penalties offer none)."""
    if invoice.kind != InvoiceKind.INVOICE:
        return discounts.NO_DISCOUNT
    terms = invoice.terms_snapshot or {}
    return discounts.discount_terms(
        gross=invoice.gross_total,
        issue_date=invoice.issue_date,
        percent=terms.get("discount_percent"),
        days=terms.get("discount_days"),
        currency=invoice.currency,
    )


class _Planner:
    """Works out allocations on locked invoices: the money each takes and the discount that goes
    with it, keeping each invoice's balance and discount taken so far as it goes."""

    def __init__(self, payment: Payment, invoices: dict[int, Invoice], take_discount: bool):
        self.payment = payment
        self.invoices = invoices
        self.balance = {pk: i.balance for pk, i in invoices.items()}
        received_on = payment.received_on
        self.offers = {
            pk: (o if take_discount and o.applies_on(received_on) else discounts.NO_DISCOUNT)
            for pk, o in ((pk, _offer(i)) for pk, i in invoices.items())
        }
        # Only invoices whose discount applies need what earlier allocations took of it.
        offered = [pk for pk, o in self.offers.items() if o.total > 0]
        taken = (
            Allocation.objects.filter(invoice_id__in=offered, reversed_at__isnull=True)
            .values("invoice_id")
            .annotate(s=Sum("discount"))
            if offered
            else []
        )
        self.taken = {row["invoice_id"]: row["s"] for row in taken}

    def _discount(self, pk: int, amount: Decimal) -> Decimal:
        invoice = self.invoices[pk]
        return discounts.discount_for(
            amount=amount,
            gross=invoice.gross_total,
            balance=self.balance[pk],
            offer=self.offers[pk],
            taken=self.taken.get(pk, ZERO),
            currency=invoice.currency,
        )

    def cash_due(self, pk: int) -> Decimal:
        offer = self.offers[pk]
        left = offer.total - self.taken.get(pk, ZERO) if offer.total else ZERO
        return discounts.cash_due(balance=self.balance[pk], discount_left=left)

    def take(self, pk: int, amount: Decimal) -> tuple[Invoice, Decimal, Decimal]:
        discount = self._discount(pk, amount) if amount <= self.balance[pk] else ZERO
        self.balance[pk] -= amount + discount
        self.taken[pk] = self.taken.get(pk, ZERO) + discount
        return self.invoices[pk], amount, discount

    def fill(self, ordered: list[int], money: Decimal) -> list[tuple[Invoice, Decimal, Decimal]]:
        """As much of `money` as `ordered` invoices take, in that order, each up to what settles it."""
        plan = []
        for pk in ordered:
            if money <= 0:
                break
            amount = min(money, self.cash_due(pk))
            if amount > 0:
                plan.append(self.take(pk, amount))
                money -= amount
        return plan


def _lock_invoices(ids) -> dict[int, Invoice]:
    return {i.pk: i for i in Invoice.objects.select_for_update().filter(pk__in=sorted(set(ids))).order_by("pk")}


def _open_invoice_ids(payment: Payment, numbers: list[str] | None = None) -> list[int]:
    # A credit note's open balance is credit owed to the customer: a payment never settles it.
    qs = Invoice.objects.filter(
        customer_id=payment.customer_id, status__in=OPEN_STATUSES, currency=payment.currency
    ).exclude(kind=InvoiceKind.CREDIT_NOTE)
    if numbers is not None:
        qs = qs.filter(number__in=numbers)
    return list(qs.values_list("pk", flat=True))


def payment_allocate(
    *,
    payment: Payment,
    allocations: list[dict] | None = None,
    invoice_numbers: list[str] | None = None,
    take_discount: bool = True,
    actor=None,
) -> list[Allocation]:
    """Allocate a payment to invoices: explicitly (`[{"invoice": Invoice, "amount": Decimal}]`),
    to the invoices named by `invoice_numbers` in that order (each up to what settles it; the rest
    stays as credit), or, when neither is given, to the customer's open invoices oldest due first.

    Money received within an invoice's early-payment discount window takes the discount with it
    (`payments.discounts`): the allocation records it and the invoice's amount paid counts it.

    Locks the payment, then the invoices by primary key, and re-reads balances under the lock;
    refuses any allocation above an invoice's balance or what is left of the payment."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        if payment.is_reversed:
            raise InvalidTransition(f"Payment {payment} is reversed; it has nothing to allocate.")
        if allocations:
            locked = _lock_invoices(a["invoice"].pk for a in allocations)
            planner = _Planner(payment, locked, take_discount)
            plan = [planner.take(a["invoice"].pk, Decimal(a["amount"])) for a in allocations]
        elif invoice_numbers:
            locked = _lock_invoices(_open_invoice_ids(payment, invoice_numbers))
            by_number = {i.number: i.pk for i in locked.values() if i.status in OPEN_STATUSES}
            planner = _Planner(payment, locked, take_discount)
            ordered = [by_number[n] for n in invoice_numbers if n in by_number]
            plan = planner.fill(ordered, payment.unallocated_amount)
        else:
            locked = _lock_invoices(_open_invoice_ids(payment))
            still_open = [i for i in locked.values() if i.status in OPEN_STATUSES]
            planner = _Planner(payment, locked, take_discount)
            ordered = [i.pk for i in sorted(still_open, key=lambda i: (i.due_date, i.issue_date, i.pk))]
            plan = planner.fill(ordered, payment.unallocated_amount)
        errors = []
        money: dict[int, Decimal] = {}
        settled: dict[int, Decimal] = {}
        for invoice, amount, discount in plan:
            money[invoice.pk] = money.get(invoice.pk, ZERO) + amount
            settled[invoice.pk] = settled.get(invoice.pk, ZERO) + amount + discount
            if amount <= 0:
                errors.append(f"Allocation to {invoice} must be greater than zero.")
            if invoice.customer_id != payment.customer_id:
                errors.append(f"Invoice {invoice} belongs to another customer.")
            if invoice.currency != payment.currency:
                errors.append(f"Invoice {invoice} is in {invoice.currency}, the payment in {payment.currency}.")
            if invoice.status not in OPEN_STATUSES:
                errors.append(f"Invoice {invoice} is {invoice.get_status_display().lower()}; it takes no payment.")
            if invoice.kind == InvoiceKind.CREDIT_NOTE:
                errors.append(f"{invoice} is a credit note; a payment cannot be allocated to it.")
        for pk, amount in settled.items():
            invoice = locked[pk]
            if invoice.status in OPEN_STATUSES and amount > invoice.balance:
                errors.append(f"Allocation of {money[pk]} to {invoice} exceeds its balance of {invoice.balance}.")
        total = sum(money.values(), ZERO)
        if total > payment.unallocated_amount:
            errors.append(
                f"Allocations total {total} but only {payment.unallocated_amount} of payment {payment} is unallocated."
            )
        if errors:
            raise ValidationFailed(" ".join(errors), code="over_allocation", details={"allocations": errors})
        created = [
            Allocation.objects.create(
                payment=payment, invoice=invoice, amount=amount, discount=discount, created_by=actor_user(actor)
            )
            for invoice, amount, discount in plan
        ]
        for pk, amount in settled.items():
            invoice = locked[pk]
            invoice_set_amount_paid(invoice=invoice, amount_paid=invoice.amount_paid + amount, actor=actor)
        payment.allocated_amount += total
        payment.save(update_fields=["allocated_amount"])
        if created:
            changes = {str(a.invoice): str(a.amount) for a in created}
            discounted = {str(a.invoice): str(a.discount) for a in created if a.discount}
            if discounted:
                changes["discounts"] = discounted
            audit_record(actor=actor, action="payment.allocated", obj=payment, changes=changes)
        return created


def payment_record(
    *,
    customer: Customer,
    method: str,
    amount: Decimal,
    currency: str,
    received_on: date | None = None,
    reference: str = "",
    source: str = PaymentSource.UI,
    allocations: list[dict] | None = None,
    auto_allocate: bool = True,
    match_reference: bool = False,
    actor=None,
) -> Payment:
    """Record money received and allocate it: explicitly; or, with `match_reference`, to the
    customer's open invoices whose numbers the reference names (`payments.matching`), in the
    order named, each up to what settles it, the rest kept as credit; or oldest due first (also
    when the reference names none of the customer's open invoices). `auto_allocate=False` keeps
    the whole amount as credit unless allocations or a matching reference say otherwise. What is
    not allocated stays on the payment as customer credit. All or nothing: a refused allocation
    saves no payment."""
    amount = Decimal(amount)
    if amount <= 0:
        raise ValidationFailed(
            "The amount must be greater than zero.", details={"amount": ["Must be greater than zero."]}
        )
    if method not in PaymentMethod.values:
        raise ValidationFailed(f"Unknown payment method {method!r}.", details={"method": ["Unknown payment method."]})
    if currency != customer.currency:
        # No FX: a customer's invoices, payments and credit are all in its one currency.
        message = f"The payment is in {currency} but {customer} is billed in {customer.currency}."
        raise ValidationFailed(message, details={"currency": [message]})
    accepted = method in (customer.payment_terms.accepted_methods or [])
    with transaction.atomic():
        payment = Payment.objects.create(
            customer=customer,
            method=method,
            method_accepted=accepted,
            amount=amount,
            currency=currency,
            received_on=received_on or timezone.localdate(),
            reference=reference,
            source=source,
            created_by=actor_user(actor),
        )
        payment.number = f"PAY-{payment.pk:06d}"
        payment.save(update_fields=["number"])
        audit_record(
            actor=actor,
            action="payment.recorded",
            obj=payment,
            changes={"amount": str(amount), "method": method, "method_accepted": accepted},
        )
        numbers = _referenced_open_invoices(payment) if match_reference and not allocations else []
        if numbers:
            payment_allocate(payment=payment, invoice_numbers=numbers, actor=actor)
        elif allocations or auto_allocate:
            payment_allocate(payment=payment, allocations=allocations, actor=actor)
        payment.refresh_from_db()
    return payment


def _referenced_open_invoices(payment: Payment) -> list[str]:
    """The numbers in the payment's reference that are open invoices of its customer, in order."""
    numbers = find_invoice_numbers(payment.reference)
    if not numbers:
        return []
    found = set(Invoice.objects.filter(pk__in=_open_invoice_ids(payment, numbers)).values_list("number", flat=True))
    return [n for n in numbers if n in found]


def payment_allocations_total(payment: Payment) -> Decimal:
    return payment.allocations.filter(reversed_at__isnull=True).aggregate(s=Sum("amount"))["s"] or Decimal("0")


def payment_refund(
    *,
    payment: Payment,
    amount: Decimal,
    reason: str,
    method: str | None = None,
    reference: str = "",
    refunded_on: date | None = None,
    source: str = PaymentSource.UI,
    actor=None,
) -> Refund:
    """Pay back part or all of a payment's unallocated credit. Locks the payment and re-reads it;
    refuses more than the credit left (the payment's check constraint backs this up), a reversed
    payment, an empty reason, a date before the payment was received or in the future."""
    amount = Decimal(amount)
    errors: dict[str, list[str]] = {}
    if amount <= 0:
        errors["amount"] = ["Must be greater than zero."]
    if not (reason or "").strip():
        errors["reason"] = ["Say why the money is paid back."]
    if method is not None and method not in PaymentMethod.values:
        errors["method"] = ["Unknown payment method."]
    refunded_on = refunded_on or timezone.localdate()
    if refunded_on > timezone.localdate():
        errors["refunded_on"] = ["A refund cannot be dated in the future."]
    if errors:
        raise ValidationFailed(" ".join(m for ms in errors.values() for m in ms), details=errors)
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        if payment.is_reversed:
            raise InvalidTransition(f"Payment {payment} is reversed; there is nothing to refund.")
        if refunded_on < payment.received_on:
            message = f"Payment {payment} was received on {payment.received_on}; a refund cannot come before it."
            raise ValidationFailed(message, details={"refunded_on": [message]})
        if amount > payment.unallocated_amount:
            message = (
                f"Only {payment.unallocated_amount} {payment.currency} of payment {payment} is unallocated credit; "
                f"{amount} cannot be refunded."
            )
            raise ValidationFailed(message, code="over_refund", details={"amount": [message]})
        refund = Refund.objects.create(
            payment=payment,
            amount=amount,
            currency=payment.currency,
            method=method or payment.method,
            reference=reference,
            reason=reason.strip(),
            refunded_on=refunded_on,
            source=source,
            created_by=actor_user(actor),
        )
        payment.refunded_amount += amount
        payment.save(update_fields=["refunded_amount"])
        audit_record(
            actor=actor,
            action="payment.refunded",
            obj=payment,
            changes={"amount": str(amount), "method": refund.method, "reason": refund.reason, "refund": refund.pk},
        )
    return refund


def payment_reverse(*, payment: Payment, reason: str, actor=None) -> Payment:
    """Reverse a payment that did not hold (bounced check, chargeback): its allocations are kept
    but marked reversed and stop counting, the invoices they paid get that money (and any
    discount taken with it) back on their balance and reopen, orders closed by them reopen, and
    the payment is marked reversed with the reason, who and when. Locks the payment, then the
    invoices by primary key. Refused for a payment already reversed, or one with refunds (pay
    the refund back first: a reversal cannot undo money sent out)."""
    if not (reason or "").strip():
        raise ValidationFailed("Say why the payment is reversed.", details={"reason": ["This field is required."]})
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        if payment.is_reversed:
            raise InvalidTransition(f"Payment {payment} is already reversed.")
        if payment.refunded_amount > 0:
            raise InvalidTransition(
                f"{payment.refunded_amount} {payment.currency} of payment {payment} was refunded; "
                "a refunded payment cannot be reversed.",
                code="refunded",
            )
        active = list(payment.allocations.filter(reversed_at__isnull=True).order_by("pk"))
        locked = _lock_invoices(a.invoice_id for a in active)
        undo: dict[int, Decimal] = {}
        for a in active:
            undo[a.invoice_id] = undo.get(a.invoice_id, ZERO) + a.amount + a.discount
        for pk, amount in sorted(undo.items()):
            invoice = locked[pk]
            invoice_set_amount_paid(invoice=invoice, amount_paid=invoice.amount_paid - amount, actor=actor)
        now = timezone.now()
        payment.allocations.filter(pk__in=[a.pk for a in active]).update(reversed_at=now)
        payment.status = PaymentStatus.REVERSED
        payment.allocated_amount = ZERO
        payment.reversed_at = now
        payment.reversed_by = actor_user(actor)
        payment.reversal_reason = reason.strip()[:255]
        payment.save(update_fields=["status", "allocated_amount", "reversed_at", "reversed_by", "reversal_reason"])
        audit_record(
            actor=actor,
            action="payment.reversed",
            obj=payment,
            changes={
                "reason": payment.reversal_reason,
                "reopened": {str(locked[pk]): str(amount) for pk, amount in undo.items()},
            },
        )
    return payment
