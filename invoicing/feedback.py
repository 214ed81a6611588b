"""The signed customer-satisfaction link printed on invoices and their e-mails.

The token carries the invoice id, signed with the project's SECRET_KEY under its own salt
(`django.core.signing`), so a customer can rate an invoice without logging in and nobody can
rate another invoice by editing the link. Its timestamp is the invoice's issue time, so the
e-mail and the PDF of one invoice carry the same link, a re-rendered PDF is byte-for-byte the
same, and the link expires FEEDBACK_MAX_AGE after issue. One response per invoice is enforced
where the answer is stored (kpis.Feedback: unique invoice), not here.

The public page lives in kpis (a higher app); the URL is reversed by route name only.
"""

from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.urls import reverse

from .models import Invoice, InvoiceKind

SALT = "otc.invoicing.feedback"
# Customers answer within days; half a year covers a slow payer without keeping links alive forever.
FEEDBACK_MAX_AGE = timedelta(days=180)


class FeedbackLinkInvalid(Exception):
    """The token was not made by us, or was altered."""


class FeedbackLinkExpired(FeedbackLinkInvalid):
    """A genuine token older than FEEDBACK_MAX_AGE."""


class _IssueTimeSigner(signing.TimestampSigner):
    """A TimestampSigner whose timestamp is the invoice's issue time instead of now."""

    def __init__(self, *, issued_at):
        super().__init__(salt=SALT)
        self._issued_at = issued_at

    def timestamp(self):
        if self._issued_at is None:
            return super().timestamp()
        return signing.b62_encode(int(self._issued_at.timestamp()))


def feedback_wanted(invoice: Invoice) -> bool:
    """Sales invoices that have been issued ask for feedback; credit notes, penalties and drafts do not."""
    return invoice.kind == InvoiceKind.INVOICE and bool(invoice.number) and invoice.pk is not None


def feedback_token(invoice: Invoice) -> str:
    return _IssueTimeSigner(issued_at=invoice.issued_at).sign_object(invoice.pk)


def feedback_url(invoice: Invoice) -> str:
    """The absolute feedback link: OTC_PUBLIC_URL plus the public page's path."""
    base = getattr(settings, "OTC_PUBLIC_URL", "http://localhost:8000").rstrip("/")
    return base + reverse("feedback", args=[feedback_token(invoice)])


def feedback_invoice_id(token: str) -> int:
    """The invoice id a token was made for. Raises FeedbackLinkExpired or FeedbackLinkInvalid."""
    try:
        value = signing.TimestampSigner(salt=SALT).unsign_object(token, max_age=FEEDBACK_MAX_AGE)
    except signing.SignatureExpired as exc:
        raise FeedbackLinkExpired(str(exc)) from exc
    except (signing.BadSignature, ValueError) as exc:
        raise FeedbackLinkInvalid(str(exc)) from exc
    if not isinstance(value, int) or isinstance(value, bool):
        raise FeedbackLinkInvalid("The token does not name an invoice.")
    return value
