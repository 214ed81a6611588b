"""The pages of a billing or penalty run, shared: the list with its start form, starting one, and
the run's page with a progress bar that htmx polls while the run goes on."""

from collections.abc import Callable
from dataclasses import dataclass

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone

from .errors import DomainError, ValidationFailed
from .views import sorted_page


@dataclass(frozen=True)
class RunPages:
    model: type
    form_class: type
    start: Callable  # start(as_of=..., actor=...) -> run
    announce: Callable  # announce(run) -> (messages level, text) after a start
    list_template: str
    detail_template: str
    progress_template: str
    list_url: str
    start_url: str
    detail_url: str
    start_label: str

    def list(self, request, form=None, status=200):
        context = sorted_page(
            request,
            self.model.objects.select_related("started_by"),
            sorts={"started": ("started_at",), "as_of": ("as_of",), "status": ("status",)},
            default="-started",
        )
        context["form"] = form or self.form_class(initial={"as_of": timezone.localdate()})
        context.update(start_label=self.start_label, start_url=self.start_url, detail_url=self.detail_url)
        return render(request, self.list_template, context, status=status)

    def start_run(self, request):
        form = self.form_class(request.POST)
        if not form.is_valid():
            return self.list(request, form, status=400)
        try:
            run = self.start(as_of=form.cleaned_data["as_of"], actor=request.user)
        except DomainError as e:
            if isinstance(e, ValidationFailed) and "as_of" in e.details:
                form.add_error("as_of", e.message)  # a date after today, refused by the service itself
                return self.list(request, form, status=400)
            messages.error(request, e.message)
            return redirect(self.list_url)
        level, text = self.announce(run)
        messages.add_message(request, level, text)
        return redirect(self.detail_url, pk=run.pk)

    def detail(self, request, pk: int):
        run = get_object_or_404(self.model.objects.select_related("started_by"), pk=pk)
        context = {
            "run": run,
            "running": run.status == "running",
            # A run's documents are issued dated the day its batches ran.
            "issue_dates": sorted(
                {timezone.localdate(run.started_at), timezone.localdate(run.finished_at or timezone.now())}
            ),
        }
        if request.htmx:
            return render(request, self.progress_template, context)
        return render(request, self.detail_template, context)
