from decimal import Decimal
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import transaction

from .errors import ValidationFailed
from .models import AuditEvent, Contact, Customer

CONTACT_FIELDS = ("name", "email", "phone", "role", "receives_invoices")
# Written by the services themselves, never by a caller.
_MANAGED_FIELDS = {"id", "created_at", "updated_at"}


def actor_user(actor):
    """The user to record for `actor`: a signed-in user, or None for the system and anonymous callers."""
    return actor if getattr(actor, "is_authenticated", False) else None


def _audit_event(*, actor, action: str, obj, changes: dict[str, Any] | None) -> AuditEvent:
    user = actor_user(actor)
    return AuditEvent(
        actor_id=user.pk if user else None,
        action=action,
        content_type_id=ContentType.objects.get_for_model(type(obj)).pk,
        object_id=obj.pk,
        object_repr=str(obj)[:200],
        changes=changes or {},
    )


def audit_record(*, actor, action: str, obj, changes: dict[str, Any] | None = None) -> AuditEvent:
    """Write one audit row: who did `action` to `obj`, with the fields that changed."""
    event = _audit_event(actor=actor, action=action, obj=obj, changes=changes)
    event.save()
    return event


def audit_record_many(*, actor, action: str, entries: list[tuple[Any, dict[str, Any] | None]]) -> None:
    """Write the audit rows of one action done to many objects at once (bulk work such as a billing
    run): one row per `(obj, changes)`, the same rows `audit_record` writes, in one INSERT."""
    AuditEvent.objects.bulk_create(
        [_audit_event(actor=actor, action=action, obj=obj, changes=changes) for obj, changes in entries]
    )


def _assign_code(customer: Customer) -> None:
    if not customer.code:
        customer.code = f"C{customer.pk:05d}"
        customer.save(update_fields=["code"])


def _audit_value(value) -> str:
    """How a field's value is written in the audit trail: text, '' for nothing."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    return str(value)


def _master_data(customer: Customer) -> dict[str, str]:
    """Every editable field of the customer as the audit trail shows it (a foreign key by its name)."""
    return {
        field.name: _audit_value(getattr(customer, field.name, None))  # None: a foreign key not set yet
        for field in Customer._meta.concrete_fields
        if field.name not in _MANAGED_FIELDS
    }


def _check_fields(fields: dict) -> None:
    editable = {f.name for f in Customer._meta.concrete_fields} - _MANAGED_FIELDS
    unknown = sorted(set(fields) - editable)
    if unknown:
        raise TypeError(f"Not customer fields: {', '.join(unknown)}")


def _contact_label(contact: Contact) -> str:
    return f"{contact.name} <{contact.email}>" if contact.email else contact.name


def _contact_values(contact: Contact) -> dict[str, str]:
    return {name: _audit_value(getattr(contact, name)) for name in CONTACT_FIELDS}


def _contacts_prepare(
    customer: Customer, contacts: list[dict], existing: dict[int, Contact]
) -> list[tuple[Contact, dict[str, str] | None]]:
    """The contacts to keep, each with its values before the change (None for a new one), checked
    one by one. A row with an `id` updates that contact of the customer; a row without one adds a
    contact. Refuses the whole list, with the errors of each row in the order given, when any row
    is invalid."""
    prepared: list[tuple[Contact, dict[str, str] | None]] = []
    errors: list[dict[str, list[str]]] = []
    seen: set[int] = set()
    for row in contacts:
        row = dict(row)
        contact_id = row.pop("id", None)
        unknown = sorted(set(row) - set(CONTACT_FIELDS))
        if unknown:
            raise TypeError(f"Not contact fields: {', '.join(unknown)}")
        row_errors: dict[str, list[str]] = {}
        contact, before = Contact(customer=customer), None
        if contact_id is not None:
            if int(contact_id) in existing and int(contact_id) not in seen:
                contact = existing[int(contact_id)]
                before = _contact_values(contact)
            else:
                row_errors["id"] = [f"Contact {contact_id} is not one of this customer's contacts, or is listed twice."]
            seen.add(int(contact_id))
        for name, value in row.items():
            setattr(contact, name, value)
        try:
            contact.full_clean(exclude=["customer"])
        except ValidationError as exc:
            row_errors.update(exc.message_dict)
        prepared.append((contact, before))
        errors.append(row_errors)
    if any(errors):
        raise ValidationFailed("Some contacts are not valid; see each row.", details={"contacts": errors})
    return prepared


def _contacts_save(
    customer: Customer, prepared: list[tuple[Contact, dict[str, str] | None]], existing: dict[int, Contact]
) -> dict[str, list[str]]:
    """Write the prepared contacts and delete the customer's others; returns what changed, for the audit."""
    kept = {contact.pk for contact, before in prepared if before is not None}
    removed = [existing[pk] for pk in sorted(set(existing) - kept)]
    if removed:
        Contact.objects.filter(pk__in=[c.pk for c in removed]).delete()
    added, changed = [], []
    for contact, before in prepared:
        if before is None:
            contact.customer = customer
            contact.save()
            added.append(_contact_label(contact))
            continue
        after = _contact_values(contact)
        names = [name for name in CONTACT_FIELDS if before[name] != after[name]]
        if names:
            contact.save(update_fields=names)
            diff = ", ".join(f"{name} {before[name] or '—'} → {after[name] or '—'}" for name in names)
            changed.append(f"{contact.name}: {diff}")
    summary = {"added": added, "changed": changed, "removed": [_contact_label(c) for c in removed]}
    return {key: value for key, value in summary.items() if value}


@transaction.atomic
def customer_create(*, actor=None, contacts: list[dict] | None = None, **fields) -> Customer:
    """Create a customer with its contacts; a code is assigned when none is given. The tax id is
    checked for the billing country and stored compact; the audit trail records every value set."""
    _check_fields(fields)
    customer = Customer(**fields)
    customer.full_clean(exclude=["code"] if not customer.code else None)
    prepared = _contacts_prepare(customer, contacts or [], {})
    customer.save()
    _assign_code(customer)
    contact_changes = _contacts_save(customer, prepared, {})
    defaults = _master_data(Customer())
    changes: dict[str, Any] = {
        name: [defaults[name], value] for name, value in _master_data(customer).items() if value != defaults[name]
    }
    if contact_changes:
        changes["contacts"] = contact_changes
    audit_record(actor=actor, action="customer.created", obj=customer, changes=changes)
    return customer


@transaction.atomic
def customer_update(*, customer: Customer, actor=None, contacts: list[dict] | None = None, **fields) -> Customer:
    """Change a customer's master data and, when `contacts` is given, replace its contacts with that
    list (rows with an `id` update that contact, rows without add one, contacts left out are removed).
    Locks the customer, then its contacts. Records each changed field in the audit trail as
    [before, after]; all or nothing: an invalid field or contact row saves nothing."""
    _check_fields(fields)
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    before = _master_data(customer)
    for name, value in fields.items():
        setattr(customer, name, value)
    customer.full_clean()
    after = _master_data(customer)
    changes: dict[str, Any] = {name: [before[name], after[name]] for name in after if before[name] != after[name]}
    existing = {c.pk: c for c in customer.contacts.select_for_update().order_by("pk")} if contacts is not None else {}
    prepared = _contacts_prepare(customer, contacts, existing) if contacts is not None else None
    if changes:
        names = [f.name for f in Customer._meta.concrete_fields if f.name in changes]
        customer.save(update_fields=[*names, "updated_at"])
    if prepared is not None and (contact_changes := _contacts_save(customer, prepared, existing)):
        changes["contacts"] = contact_changes
    if changes:
        audit_record(actor=actor, action="customer.updated", obj=customer, changes=changes)
    return customer
