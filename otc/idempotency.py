"""`Idempotency-Key` for POST endpoints: a retried request gets the first response back instead of
doing the work twice.

A view opts in by decorating its handler (a DRF view method or viewset action)::

    @idempotent
    def create(self, request, *args, **kwargs): ...

How a request with the header runs:

1. The key (1-255 printable ASCII characters, else 400) is scoped to the authenticated user; the
   request's fingerprint is the SHA-256 of its method, full path (with the query string) and
   canonical body (parsed data as JSON with sorted keys, so key order and whitespace don't matter).
2. The record `(user, key)` is taken with an INSERT committed at once. The unique constraint
   decides races: the loser reads the winner's record and answers
   - 422 `idempotency_key_reused` if the fingerprint differs (same key, another request);
   - the stored response (same status and body, header `Idempotent-Replayed: true`) if done;
   - 409 `idempotency_in_progress` (with `Retry-After`) while the first request still runs.
3. The handler runs in one transaction together with storing its response, so the work and the
   "done" marker commit together or not at all.

What is stored: every response below 500, including 4xx refusals (a 400 for an invalid order, a
409 for a bad state): the key stands for one attempt, a retry with the same key and body gets the
same answer, and a corrected request needs a new key (its body differs anyway). A server error
(an uncaught exception or a 5xx response) is never stored: the work is rolled back and the record
released, so the retry runs again. If the process dies mid-request the record stays in progress
with nothing committed; after `OTC_IDEMPOTENCY_LEASE_SECONDS` (default 300) a retry takes it over.
Records older than 24 hours are deleted by the periodic task `otc.tasks.idempotency_purge`.

Needs ATOMIC_REQUESTS off (as everywhere in OTC): the record must commit before the handler runs
so that a concurrent request sees it instead of waiting on it.
"""

import functools
import hashlib
import json
import logging
import re
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone
from django.utils.datastructures import MultiValueDict
from drf_spectacular.utils import OpenApiParameter
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from billing.errors import Conflict, DomainError, ValidationFailed

from .models import IdempotencyRecord, IdempotencyStatus

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
RETENTION = timedelta(hours=24)
_KEY_RE = re.compile(rf"[\x20-\x7e]{{1,{MAX_KEY_LENGTH}}}")

# For @extend_schema(parameters=[...]) on every @idempotent endpoint.
IDEMPOTENCY_PARAMETER = OpenApiParameter(
    HEADER,
    str,
    OpenApiParameter.HEADER,
    description="Makes the request safe to retry: 1-255 printable ASCII characters, unique per request (a UUID). "
    "A retry with the same key and body gets the first response again (header `Idempotent-Replayed: true`); "
    "the same key with another body is 422 `idempotency_key_reused`; while the first request still runs, "
    "409 `idempotency_in_progress`. Responses below 500 are kept for 24 hours.",
)


class IdempotencyKeyReused(DomainError):
    """The key was first used with a different request."""

    code = "idempotency_key_reused"
    status = 422


class IdempotencyInProgress(Conflict):
    """The first request under this key has not finished yet."""

    code = "idempotency_in_progress"


class _Lost(Exception):
    """Another attempt took the key over while this one ran: its work must not be committed."""


class _ServerError(Exception):
    def __init__(self, response):
        super().__init__(response.status_code)
        self.response = response


def lease_seconds() -> int:
    return int(getattr(settings, "OTC_IDEMPOTENCY_LEASE_SECONDS", 300))


def validate_key(raw: str) -> str:
    if not _KEY_RE.fullmatch(raw) or not raw.strip():
        raise ValidationFailed(
            f"The {HEADER} header must be 1 to {MAX_KEY_LENGTH} printable ASCII characters.",
            details={HEADER: [f"Give 1 to {MAX_KEY_LENGTH} printable ASCII characters, e.g. a UUID."]},
        )
    return raw


def _canonical(data):
    if isinstance(data, MultiValueDict):
        return {str(k): [_canonical(v) for v in data.getlist(k)] for k in data}
    if isinstance(data, dict):
        return {str(k): _canonical(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_canonical(v) for v in data]
    if isinstance(data, UploadedFile):
        digest = hashlib.sha256()
        for chunk in data.chunks():
            digest.update(chunk)
        data.seek(0)
        return {"file": data.name, "size": data.size, "sha256": digest.hexdigest()}
    return data


def request_fingerprint(request) -> str:
    """SHA-256 of method, full path and the parsed body as canonical JSON."""
    body = json.dumps(
        _canonical(request.data), sort_keys=True, separators=(",", ":"), ensure_ascii=False, cls=JSONEncoder
    )
    text = f"{request.method.upper()}\n{request.get_full_path()}\n{body}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _take(*, user, key: str, fingerprint: str, request) -> IdempotencyRecord | Response:
    """Take the key for this request, or return the stored response; raise 422 / 409 otherwise."""
    for _ in range(3):
        try:
            with transaction.atomic():
                return IdempotencyRecord.objects.create(
                    user=user,
                    key=key,
                    fingerprint=fingerprint,
                    method=request.method.upper(),
                    path=request.get_full_path()[:2000],
                )
        except IntegrityError:
            pass
        existing = IdempotencyRecord.objects.filter(user=user, key=key).first()
        if existing is None:
            continue  # its request failed and released the key in between: try again
        if existing.fingerprint != fingerprint:
            raise IdempotencyKeyReused(
                f"The {HEADER} {key!r} was already used with a different request; use a new key for a new request.",
                details={HEADER: key, "first_used_for": f"{existing.method} {existing.path}"},
            )
        if existing.status == IdempotencyStatus.DONE:
            return Response(existing.response_body, status=existing.response_status, headers={REPLAYED_HEADER: "true"})
        now = timezone.now()
        if existing.started_at < now - timedelta(seconds=lease_seconds()):
            # The first attempt died without committing anything (its work commits with "done").
            attempt = uuid.uuid4()
            taken = IdempotencyRecord.objects.filter(
                pk=existing.pk, status=IdempotencyStatus.IN_PROGRESS, attempt=existing.attempt
            ).update(attempt=attempt, started_at=now)
            if taken:
                existing.attempt, existing.started_at = attempt, now
                return existing
            continue
        break
    raise IdempotencyInProgress(
        f"A request with the {HEADER} {key!r} is still being processed; retry in a moment.",
        details={HEADER: key},
    )


def _mine(record: IdempotencyRecord):
    return IdempotencyRecord.objects.filter(pk=record.pk, attempt=record.attempt, status=IdempotencyStatus.IN_PROGRESS)


def _store(record: IdempotencyRecord, response: Response) -> None:
    body = json.loads(json.dumps(response.data, cls=JSONEncoder))
    stored = _mine(record).update(
        status=IdempotencyStatus.DONE,
        response_status=response.status_code,
        response_body=body,
        completed_at=timezone.now(),
    )
    if not stored:
        raise _Lost


def _release(record: IdempotencyRecord) -> None:
    try:
        _mine(record).delete()
    except DatabaseError:
        # The connection may be what failed; the lease lets a later retry take the key over.
        log.exception("Could not release Idempotency-Key record %s", record.pk)


def _conflict_response(view, exc: DomainError) -> Response:
    response = view.handle_exception(exc)
    response["Retry-After"] = "1"
    return response


def idempotent(handler):
    """Make a POST handler safe to retry with an `Idempotency-Key` header (see the module doc).
    Without the header the handler runs as before. The handler must return a DRF Response."""

    @functools.wraps(handler)
    def wrapper(view, request, *args, **kwargs):
        raw = request.headers.get(HEADER)
        if raw is None:
            return handler(view, request, *args, **kwargs)
        key = validate_key(raw)
        if not request.user.is_authenticated:
            raise ValidationFailed(
                f"An {HEADER} is kept per caller; sign in to use one.",
                details={HEADER: ["Needs an authenticated caller."]},
            )
        try:
            taken = _take(user=request.user, key=key, fingerprint=request_fingerprint(request), request=request)
        except IdempotencyInProgress as exc:
            return _conflict_response(view, exc)
        if isinstance(taken, Response):
            return taken
        record = taken
        try:
            with transaction.atomic():
                response = handler(view, request, *args, **kwargs)
                if not isinstance(response, Response):
                    raise TypeError(f"{handler.__qualname__} is @idempotent but returned {type(response).__name__}")
                if response.status_code >= 500:
                    raise _ServerError(response)
                _store(record, response)
            return response
        except _ServerError as exc:
            _release(record)
            return exc.response
        except _Lost:
            return _conflict_response(
                view, IdempotencyInProgress(f"Another request took over the {HEADER} {key!r}.", details={HEADER: key})
            )
        except Exception as exc:
            # Turn a refusal (domain error, validation error) into its response now, with the work
            # rolled back, and store it; anything else is a server error: release and re-raise.
            try:
                response = view.handle_exception(exc)
            except Exception:
                _release(record)
                raise
            if response.status_code >= 500:
                _release(record)
                return response
            try:
                with transaction.atomic():
                    _store(record, response)
            except _Lost:
                pass
            return response

    wrapper.idempotent = True
    return wrapper


def purge(*, older_than: timedelta = RETENTION, batch: int = 5000) -> int:
    """Delete records older than `older_than`, in bounded batches; returns how many went."""
    cutoff = timezone.now() - older_than
    total = 0
    while True:
        ids = list(IdempotencyRecord.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[:batch])
        if not ids:
            return total
        total += IdempotencyRecord.objects.filter(pk__in=ids).delete()[0]
