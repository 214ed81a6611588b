from datetime import date
from decimal import Decimal

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from billing.errors import ValidationFailed
from billing.models import Customer, PaymentMethod
from billing.services import actor_user, audit_record
from invoicing.models import OPEN_STATUSES, Invoice, InvoiceKind
from invoicing.services import invoice_set_amount_paid

from .models import Allocation, Payment, PaymentSource


def _plan_oldest_first(payment: Payment, invoices: list[Invoice]) -> list[tuple[Invoice, Decimal]]:
    left = payment.unallocated_amount
    plan = []
    for invoice in sorted(invoices, key=lambda i: (i.due_date, i.issue_date, i.pk)):
        if left <= 0:
            break
        take = min(left, invoice.balance)
        if take > 0:
            plan.append((invoice, take))
            left -= take
    return plan


def payment_allocate(*, payment: Payment, allocations: list[dict] | None = None, actor=None) -> list[Allocation]:
    """Allocate a payment to invoices: explicitly (`[{"invoice": Invoice, "amount": Decimal}]`)
    or, when none are given, to the customer's open invoices oldest due first. Locks the payment,
    then the invoices by primary key, and re-reads balances under the lock; refuses any
    allocation above an invoice's balance or what is left of the payment."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        if allocations:
            ids = sorted({a["invoice"].pk for a in allocations})
            locked = {i.pk: i for i in Invoice.objects.select_for_update().filter(pk__in=ids).order_by("pk")}
            plan = [(locked[a["invoice"].pk], Decimal(a["amount"])) for a in allocations]
        else:
            # A credit note's open balance is credit owed to the customer: a payment never settles it.
            open_ids = list(
                Invoice.objects.filter(
                    customer_id=payment.customer_id, status__in=OPEN_STATUSES, currency=payment.currency
                )
                .exclude(kind=InvoiceKind.CREDIT_NOTE)
                .values_list("pk", flat=True)
            )
            locked = {i.pk: i for i in Invoice.objects.select_for_update().filter(pk__in=open_ids).order_by("pk")}
            plan = _plan_oldest_first(payment, [i for i in locked.values() if i.status in OPEN_STATUSES])
        errors = []
        wanted: dict[int, Decimal] = {}
        for invoice, amount in plan:
            wanted[invoice.pk] = wanted.get(invoice.pk, Decimal("0")) + amount
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
        for pk, amount in wanted.items():
            invoice = locked[pk]
            if invoice.status in OPEN_STATUSES and amount > invoice.balance:
                errors.append(f"Allocation of {amount} to {invoice} exceeds its balance of {invoice.balance}.")
        total = sum(wanted.values(), Decimal("0"))
        if total > payment.unallocated_amount:
            errors.append(
                f"Allocations total {total} but only {payment.unallocated_amount} of payment {payment} is unallocated."
            )
        if errors:
            raise ValidationFailed(" ".join(errors), code="over_allocation", details={"allocations": errors})
        created = [
            Allocation.objects.create(payment=payment, invoice=invoice, amount=amount, created_by=actor_user(actor))
            for invoice, amount in plan
        ]
        for pk, amount in wanted.items():
            invoice = locked[pk]
            invoice_set_amount_paid(invoice=invoice, amount_paid=invoice.amount_paid + amount, actor=actor)
        payment.allocated_amount += total
        payment.save(update_fields=["allocated_amount"])
        if created:
            audit_record(
                actor=actor,
                action="payment.allocated",
                obj=payment,
                changes={str(a.invoice): str(a.amount) for a in created},
            )
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
    actor=None,
) -> Payment:
    """Record money received and allocate it (explicitly, or oldest due first). What is not
    allocated stays on the payment as customer credit. All or nothing: a refused allocation
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
        if allocations or auto_allocate:
            payment_allocate(payment=payment, allocations=allocations, actor=actor)
        payment.refresh_from_db()
    return payment


def payment_allocations_total(payment: Payment) -> Decimal:
    return payment.allocations.aggregate(s=Sum("amount"))["s"] or Decimal("0")
