"""The roles of OTC as Django groups, with their permissions by `app_label.codename`.

`python manage.py setup_roles` creates or updates the groups to match (idempotent: the groups end up
with exactly these permissions). A permission that does not exist yet (a custom one whose model
change is not migrated, say) is skipped with a warning rather than failing the whole setup.

- Finance clerk: day-to-day work in the browser: customers, orders, invoices, payments (add, change,
  view; never delete), and reading the master data they use.
- Finance manager: everything a clerk does, plus master data (payment terms, tax rates, products,
  bank accounts, dunning levels), billing runs, credit notes, penalties, and the two overrides of
  order entry.
- Integrator: an API account: customers, orders, invoices and payments (add, change, view).
- Admin: every permission.
"""

from dataclasses import dataclass, field

from django.contrib.auth.models import Group, Permission
from django.db import transaction

ALL = "*"

FINANCE_CLERK = "Finance clerk"
FINANCE_MANAGER = "Finance manager"
INTEGRATOR = "Integrator"
ADMIN = "Admin"


def perms(app_label: str, model: str, *actions: str) -> list[str]:
    return [f"{app_label}.{action}_{model}" for action in actions]


WORK = ("add", "change", "view")

_CLERK = [
    *perms("billing", "customer", *WORK),
    *perms("billing", "contact", *WORK),
    *perms("billing", "paymentterms", "view"),
    *perms("billing", "taxrate", "view"),
    *perms("billing", "auditevent", "view"),
    *perms("orders", "order", *WORK),
    *perms("orders", "orderline", *WORK),
    *perms("orders", "orderevent", "view"),
    *perms("orders", "product", "view"),
    *perms("invoicing", "invoice", *WORK),
    *perms("invoicing", "invoiceline", *WORK),
    *perms("invoicing", "billingrun", "view"),
    *perms("invoicing", "creditapplication", "view"),
    *perms("invoicing", "printbatch", "view"),
    *perms("payments", "payment", *WORK),
    *perms("payments", "allocation", *WORK),
    *perms("payments", "penaltyassessment", "view"),
    *perms("payments", "statementdelivery", "view"),
    *perms("payments", "refund", *WORK),
    *perms("payments", "bankaccount", "view"),
    *perms("payments", "bankstatement", *WORK),
    *perms("payments", "bankline", *WORK),
    *perms("payments", "dunninglevel", "view"),
    *perms("payments", "dunningnotice", "view"),
    *perms("payments", "dunningitem", "view"),
    *perms("payments", "webhookevent", "view"),
    *perms("kpis", "feedback", *WORK),
    *perms("kpis", "kpisnapshot", "view"),
]

ROLES: dict[str, list[str]] = {
    FINANCE_CLERK: _CLERK,
    FINANCE_MANAGER: [
        *_CLERK,
        # Defined on orders.Order (Meta.permissions).
        "orders.override_line_price",  # may override a line's unit price
        "orders.override_credit_limit",  # may confirm an order over the credit limit, with a reason
        *perms("billing", "paymentterms", "add", "change"),
        *perms("billing", "taxrate", "add", "change"),
        *perms("orders", "product", "add", "change"),
        *perms("invoicing", "billingrun", "add", "change"),
        *perms("invoicing", "creditapplication", "add", "change"),
        *perms("invoicing", "printbatch", "add", "change"),
        *perms("payments", "penaltyassessment", "change"),
        *perms("payments", "penaltyrun", "add", "change", "view"),
        *perms("payments", "statementdelivery", "add", "change"),
        *perms("payments", "bankaccount", "add", "change"),
        *perms("payments", "dunninglevel", "add", "change"),
    ],
    INTEGRATOR: [
        *perms("billing", "customer", *WORK),
        *perms("billing", "contact", *WORK),
        *perms("billing", "paymentterms", "view"),
        *perms("billing", "taxrate", "view"),
        *perms("orders", "order", *WORK),
        *perms("orders", "orderline", *WORK),
        *perms("orders", "product", "view"),
        *perms("invoicing", "invoice", *WORK),
        *perms("invoicing", "invoiceline", *WORK),
        *perms("payments", "payment", *WORK),
        *perms("payments", "allocation", *WORK),
    ],
    ADMIN: [ALL],
}


@dataclass
class RoleResult:
    name: str
    created: bool
    permissions: int
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def _key(permission: Permission) -> str:
    return f"{permission.content_type.app_label}.{permission.codename}"


@transaction.atomic
def roles_sync(roles: dict[str, list[str]] | None = None) -> list[RoleResult]:
    """Create or update each role's group so it has exactly its permissions; report what changed
    and which permissions do not exist (skipped)."""
    known = {_key(p): p for p in Permission.objects.select_related("content_type")}
    results = []
    for name, specs in (roles or ROLES).items():
        wanted = set(known) if ALL in specs else {s for s in specs if s in known}
        missing = sorted({s for s in specs if s != ALL and s not in known})
        group, created = Group.objects.get_or_create(name=name)
        group = Group.objects.select_for_update().get(pk=group.pk)
        current = {_key(p) for p in group.permissions.select_related("content_type")}
        if current != wanted:
            group.permissions.set([known[k] for k in sorted(wanted)])
        results.append(
            RoleResult(
                name=name,
                created=created,
                permissions=len(wanted),
                added=sorted(wanted - current),
                removed=sorted(current - wanted),
                missing=missing,
            )
        )
    return results
