from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import transaction

from .models import AuditEvent, Contact, Customer


def audit_record(*, actor, action: str, obj, changes: dict[str, Any] | None = None) -> AuditEvent:
    """Write one audit row: who did `action` to `obj`, with the fields that changed."""
    user = actor if getattr(actor, "is_authenticated", False) else None
    return AuditEvent.objects.create(
        actor=user,
        action=action,
        content_type=ContentType.objects.get_for_model(type(obj)),
        object_id=obj.pk,
        object_repr=str(obj)[:200],
        changes=changes or {},
    )


def _assign_code(customer: Customer) -> None:
    if not customer.code:
        customer.code = f"C{customer.pk:05d}"
        customer.save(update_fields=["code"])


@transaction.atomic
def customer_create(*, actor=None, contacts: list[dict] | None = None, **fields) -> Customer:
    """Create a customer; a code is assigned when none is given."""
    customer = Customer(**fields)
    customer.full_clean(exclude=["code"] if not customer.code else None)
    customer.save()
    _assign_code(customer)
    for contact in contacts or []:
        Contact.objects.create(customer=customer, **contact)
    audit_record(actor=actor, action="customer.created", obj=customer, changes={"name": customer.name})
    return customer


@transaction.atomic
def customer_update(*, customer: Customer, actor=None, contacts: list[dict] | None = None, **fields) -> Customer:
    """Change a customer's master data; records each changed field in the audit trail."""
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    changes = {}
    for name, value in fields.items():
        old = getattr(customer, name)
        if old != value:
            changes[name] = [str(old), str(value)]
            setattr(customer, name, value)
    customer.full_clean()
    customer.save()
    if contacts is not None:
        customer.contacts.all().delete()
        for contact in contacts:
            Contact.objects.create(customer=customer, **contact)
        changes["contacts"] = len(contacts)
    if changes:
        audit_record(actor=actor, action="customer.updated", obj=customer, changes=changes)
    return customer
