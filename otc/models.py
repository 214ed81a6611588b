import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class IdempotencyStatus(models.TextChoices):
    """in_progress while the first request under a key runs; done once its response is stored."""

    IN_PROGRESS = "in_progress", "In progress"
    DONE = "done", "Done"


class IdempotencyRecord(models.Model):
    """One `Idempotency-Key` of one caller: the request it was first used with and, once done,
    the response every retry gets back (see otc.idempotency)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of method, path and canonical body.")
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=2000)
    status = models.CharField(max_length=20, choices=IdempotencyStatus.choices, default=IdempotencyStatus.IN_PROGRESS)
    # Which attempt holds the key: a stale in-progress record is taken over by changing it, and the
    # original attempt, finding it changed, rolls its work back instead of storing a second outcome.
    attempt = models.UUIDField(default=uuid.uuid4)
    started_at = models.DateTimeField(auto_now_add=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_one_record_per_user_key"),
            models.CheckConstraint(
                condition=Q(status=IdempotencyStatus.IN_PROGRESS) | Q(response_status__isnull=False),
                name="idempotency_done_has_response",
            ),
            # Server errors are never replayed: the retry must run the request again.
            models.CheckConstraint(
                condition=Q(response_status__isnull=True) | Q(response_status__lt=500),
                name="idempotency_no_stored_server_error",
            ),
        ]

    def __str__(self):
        return f"{self.key} ({self.status})"
