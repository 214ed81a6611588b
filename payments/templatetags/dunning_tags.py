"""Dunning on pages of lower apps: the customer page shows the reminders sent, the invoice page the
dispute flag and the late-payment penalties (with their waiver). Billing and invoicing templates
load these tags; their code never imports payments."""

from django import template
from django.db.models import Prefetch

from ..models import DunningItem, DunningNotice, PenaltyAssessment

register = template.Library()
HISTORY_LIMIT = 10


@register.inclusion_tag("payments/_customer_dunning.html")
def customer_dunning(customer):
    items = DunningItem.objects.select_related("invoice", "level").order_by("invoice__due_date", "invoice_id")
    notices = (
        DunningNotice.objects.filter(customer=customer)
        .select_related("level")
        .prefetch_related(Prefetch("items", queryset=items))
        .order_by("-as_of", "-pk")[: HISTORY_LIMIT + 1]
    )
    notices = list(notices)
    return {"customer": customer, "notices": notices[:HISTORY_LIMIT], "more": len(notices) > HISTORY_LIMIT}


@register.inclusion_tag("payments/_invoice_dispute.html", takes_context=True)
def invoice_dispute(context, invoice):
    return {"invoice": invoice, "csrf_token": context.get("csrf_token"), "request": context.get("request")}


@register.inclusion_tag("payments/_invoice_penalties.html", takes_context=True)
def invoice_penalties(context, invoice):
    """The penalties charged on an overdue invoice, or the one a penalty invoice charges."""
    if invoice.kind == "penalty":
        assessments = PenaltyAssessment.objects.filter(penalty_invoice=invoice)
    else:
        assessments = PenaltyAssessment.objects.filter(invoice=invoice)
    assessments = list(assessments.select_related("penalty_invoice", "waived_by").order_by("period_end", "pk"))
    return {
        "invoice": invoice,
        "assessments": assessments,
        "on_penalty": invoice.kind == "penalty",
        "csrf_token": context.get("csrf_token"),
    }
