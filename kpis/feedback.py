"""Customer satisfaction: answers from the signed invoice link and from staff calls.

One response per invoice, whoever comes first: the invoice row is locked while the answer is
checked and stored (so two submits of one link, or a link and a call, never both store), and the
unique invoice on Feedback backs that up in the database."""

from django.db import transaction
from django.db.models import Avg, Count, Q

from billing.errors import Conflict, ValidationFailed
from billing.services import actor_user, audit_record
from invoicing.feedback import feedback_wanted
from invoicing.models import Invoice

from .models import Feedback, FeedbackSource

RATINGS = (1, 2, 3, 4, 5)
COMMENT_MAX = 2000


def _check(*, rating, comment: str) -> None:
    errors = {}
    if not isinstance(rating, int) or isinstance(rating, bool) or rating not in RATINGS:
        errors["rating"] = ["Choose a rating from 1 to 5."]
    if len(comment) > COMMENT_MAX:
        errors["comment"] = [f"Keep the comment under {COMMENT_MAX} characters."]
    if errors:
        raise ValidationFailed("The feedback is not valid.", details=errors)


@transaction.atomic
def feedback_record(
    *, invoice: Invoice | int, rating: int, comment: str = "", source: str = FeedbackSource.LINK, actor=None
) -> Feedback:
    """Store the one answer an invoice gets: from its signed link (source `link`, no user) or
    entered by staff after a call (source `call`). Refuses a second answer with Conflict."""
    comment = (comment or "").strip()
    _check(rating=rating, comment=comment)
    if source not in FeedbackSource.values:
        raise ValidationFailed("Unknown feedback source.", details={"source": [f"One of {FeedbackSource.values}."]})
    pk = invoice.pk if isinstance(invoice, Invoice) else invoice
    locked = Invoice.objects.select_for_update(no_key=True).filter(pk=pk).first()
    if locked is None or not feedback_wanted(locked):
        raise ValidationFailed(
            "Feedback is taken on issued invoices only.", details={"invoice": ["Choose an issued invoice."]}
        )
    existing = Feedback.objects.filter(invoice_id=locked.pk).first()
    if existing is not None:
        raise Conflict(
            f"Invoice {locked.number} already has feedback ({existing.rating}/5).",
            details={"invoice": ["This invoice already has feedback."]},
        )
    feedback = Feedback.objects.create(
        invoice=locked,
        customer_id=locked.customer_id,
        rating=rating,
        comment=comment,
        source=source,
        created_by=actor_user(actor),
    )
    audit_record(
        actor=actor,
        action="feedback.recorded",
        obj=feedback,
        changes={"invoice": locked.number, "rating": rating, "source": source},
    )
    return feedback


# --- Reads ---------------------------------------------------------------------------------------


def feedback_list():
    return Feedback.objects.select_related("invoice", "customer", "created_by")


def customer_feedback_summary(customer_id: int, *, recent: int = 5) -> dict:
    """A customer's ratings: count, average, share of 4-5 (CSAT) and the latest few answers."""
    rows = Feedback.objects.filter(customer_id=customer_id)
    agg = rows.aggregate(count=Count("id"), average=Avg("rating"), satisfied=Count("id", filter=Q(rating__gte=4)))
    count = agg["count"]
    return {
        "count": count,
        "average": agg["average"],
        "csat": round(100 * agg["satisfied"] / count) if count else None,
        "recent": list(rows.select_related("invoice", "created_by").order_by("-created_at", "-id")[:recent]),
    }


def invoices_awaiting_feedback(customer_id: int):
    """The customer's issued sales invoices that have no feedback yet, newest first (staff entry)."""
    return (
        Invoice.objects.filter(customer_id=customer_id, kind="invoice", number__isnull=False, feedback__isnull=True)
        .exclude(status__in=["draft", "void"])
        .order_by("-issue_date", "-id")
    )
