"""`{% invoice_feedback_url invoice as url %}`: the signed feedback link for invoice e-mails and PDFs
(empty for documents that do not ask for feedback)."""

from django import template

from invoicing.feedback import feedback_url, feedback_wanted

register = template.Library()


@register.simple_tag
def invoice_feedback_url(invoice) -> str:
    return feedback_url(invoice) if invoice is not None and feedback_wanted(invoice) else ""
