"""Payment gateway webhooks: signature checks and posting what an event says.

A provider signs each notification with its shared secret (`settings.OTC_WEBHOOK_SECRETS`):
header `OTC-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`. Several `v1`
entries are allowed (secret rotation); any one matching is enough. The time must be within
`OTC_WEBHOOK_TOLERANCE` seconds of now, either way, so a captured request cannot be replayed later.

Each event is stored once per (provider, event id) — a unique constraint — and posted in the same
transaction: a repeat, even one racing the first, finds it stored and does nothing."""

import hashlib
import hmac
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.errors import DomainError
from billing.models import Customer, PaymentMethod

from .models import PaymentSource, WebhookEvent, WebhookEventType, WebhookOutcome
from .services import payment_record, payment_refund


class SignatureError(Exception):
    """The request is not signed by the provider: missing, malformed, wrong or stale."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def sign(*, secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of "<timestamp>.<body>" under `secret`."""
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_header(*, secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={sign(secret=secret, timestamp=timestamp, body=body)}"


def verify_signature(*, secret: str, header: str | None, body: bytes, now: int, tolerance: int) -> None:
    """Raise SignatureError unless `header` carries a fresh timestamp and a matching v1 signature."""
    if not header:
        raise SignatureError("signature_missing", "The OTC-Signature header is missing.")
    timestamp, signatures = None, []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or not value:
            raise SignatureError("signature_malformed", "OTC-Signature must read t=<unix time>,v1=<hex>.")
        if key == "t":
            if not value.isascii() or not value.isdigit() or len(value) > 12 or timestamp is not None:
                raise SignatureError("signature_malformed", "The signature time must be one Unix time in seconds.")
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        raise SignatureError("signature_malformed", "OTC-Signature must read t=<unix time>,v1=<hex>.")
    if abs(now - timestamp) > tolerance:
        raise SignatureError("signature_expired", f"The signature time is more than {tolerance} seconds away from now.")
    expected = sign(secret=secret, timestamp=timestamp, body=body)
    if not any(hmac.compare_digest(expected, s) for s in signatures if s.isascii()):
        raise SignatureError("signature_invalid", "The signature does not match the body.")


@dataclass(frozen=True)
class GatewayEvent:
    """A checked event body."""

    event_id: str
    type: str
    gateway_payment_id: str
    amount: Decimal
    currency: str
    customer: str = ""
    reference: str = ""
    method: str = PaymentMethod.CARD


def _post(provider: str, event: GatewayEvent, stored: WebhookEvent) -> None:
    """Post what the event says onto `stored` (outcome, payment, refund); a refusal raises DomainError."""
    if event.type == WebhookEventType.PAYMENT_FAILED:
        stored.outcome, stored.detail = WebhookOutcome.NOTED, "Payment failed at the gateway; nothing posted."
        return
    if event.type == WebhookEventType.PAYMENT_SUCCEEDED:
        earlier = (
            WebhookEvent.objects.filter(
                provider=provider,
                gateway_payment_id=event.gateway_payment_id,
                outcome=WebhookOutcome.PAYMENT_RECORDED,
            )
            .exclude(pk=stored.pk)
            .select_related("payment")
            .first()
        )
        if earlier is not None:
            stored.outcome = WebhookOutcome.NOTED
            stored.detail = f"Payment {event.gateway_payment_id} was already recorded as {earlier.payment}."
            stored.payment = earlier.payment
            return
        customer = Customer.objects.select_related("payment_terms").filter(code=event.customer).first()
        if customer is None:
            raise DomainError(f"No customer has the code {event.customer!r}.", code="unknown_customer")
        payment = payment_record(
            customer=customer,
            method=event.method,
            amount=event.amount,
            currency=event.currency,
            received_on=timezone.localdate(),
            reference=event.reference or event.gateway_payment_id,
            source=PaymentSource.GATEWAY,
            auto_allocate=False,
            match_reference=True,
        )
        stored.outcome, stored.payment = WebhookOutcome.PAYMENT_RECORDED, payment
        allocated = ", ".join(a.invoice.number for a in payment.allocations.select_related("invoice"))
        stored.detail = (f"Allocated to {allocated}." if allocated else "No open invoice referenced: kept as credit.")[
            :255
        ]
        return
    # refund.succeeded: the refund of a payment an earlier event recorded.
    original = (
        WebhookEvent.objects.filter(
            provider=provider, gateway_payment_id=event.gateway_payment_id, outcome=WebhookOutcome.PAYMENT_RECORDED
        )
        .select_related("payment")
        .first()
    )
    if original is None:
        raise DomainError(f"No recorded payment has the gateway id {event.gateway_payment_id!r}.", code="unknown")
    if event.currency != original.payment.currency:
        raise DomainError(f"The refund is in {event.currency}; the payment in {original.payment.currency}.")
    refund = payment_refund(
        payment=original.payment,
        amount=event.amount,
        reason=f"Refunded through {provider}",
        reference=event.event_id[:140],
        refunded_on=max(timezone.localdate(), original.payment.received_on),
        source=PaymentSource.GATEWAY,
    )
    stored.outcome, stored.payment, stored.refund = WebhookOutcome.REFUND_RECORDED, original.payment, refund


def webhook_receive(*, provider: str, event: GatewayEvent, payload: dict) -> tuple[WebhookEvent, bool]:
    """Store a signed gateway event and post it: payment.succeeded records a gateway payment and
    allocates it to the invoices its reference names (the rest stays credit); payment.failed is
    only noted; refund.succeeded refunds the payment an earlier event recorded. What cannot be
    posted (unknown customer or payment, other currency, more than the credit) is stored as
    `needs_review` with the reason. Returns (event, False) for an event already stored."""
    try:
        with transaction.atomic():
            stored = WebhookEvent.objects.create(
                provider=provider,
                event_id=event.event_id,
                type=event.type,
                gateway_payment_id=event.gateway_payment_id,
                payload=payload,
                outcome=WebhookOutcome.NEEDS_REVIEW,
            )
            try:
                with transaction.atomic():
                    _post(provider, event, stored)
            except DomainError as e:
                stored.outcome, stored.detail = WebhookOutcome.NEEDS_REVIEW, e.message[:255]
                stored.payment = stored.refund = None
            stored.save(update_fields=["outcome", "detail", "payment", "refund"])
    except IntegrityError:
        # The same event stored by a request that committed first (the unique constraint).
        existing = WebhookEvent.objects.filter(provider=provider, event_id=event.event_id).first()
        if existing is None:
            raise
        return existing, False
    return stored, True
