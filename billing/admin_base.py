"""Admin building blocks shared by the apps (the lowest layer, so every app may use them)."""

from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written only by their services (runs, batches, assessments, refunds, feedback,
    snapshots): admins look them up, filter and search them, and never add, edit or delete one,
    which would bypass the locks and the audit trail of those services."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline(admin.TabularInline):
    """The rows of a read-only record, shown on its page."""

    extra = 0

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class RunBatchInline(ReadOnlyInline):
    """The stored batches of a billing or penalty run (`billing.models.RunBatch`)."""

    verbose_name_plural = "batches (the stored messages sent to the workers)"
    fields = ["items", "sent_at", "sends", "done_at"]
