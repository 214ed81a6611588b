"""Dunning on pages of lower apps: the customer page shows the reminders sent, the invoice page the
dispute flag. Billing and invoicing templates load these tags; their code never imports payments."""

from django import template
from django.db.models import Prefetch

from ..models import DunningItem, DunningNotice

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
