import time
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from billing.errors import DomainError
from payments.models import PenaltyRun, PenaltyRunStatus
from payments.penalties import run_start


class Command(BaseCommand):
    help = (
        "Assess late-payment interest and fees on overdue invoices as of a date, as penalty invoices. "
        "Fans out to the workers, returns when the run is complete, and prints what it charged."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--as-of",
            type=date.fromisoformat,
            default=None,
            help="Assess up to this date (YYYY-MM-DD). Default: today.",
        )
        parser.add_argument("--timeout", type=int, default=3600, help="Seconds to wait for the workers.")

    def handle(self, *args, as_of=None, timeout=3600, **options):
        try:
            run = run_start(as_of=as_of)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"Penalty run #{run.pk} as of {run.as_of}: {run.candidates} candidate invoice(s) "
            f"in {run.total_batches} batch(es)."
        )
        deadline = time.monotonic() + timeout
        while True:
            run = PenaltyRun.objects.get(pk=run.pk)
            if run.status == PenaltyRunStatus.DONE:
                break
            if time.monotonic() > deadline:
                raise CommandError(f"Penalty run #{run.pk} not finished after {timeout} s; it goes on in the workers.")
            time.sleep(0.5)
        self.stdout.write(
            f"Penalty run #{run.pk} done: {run.assessments} assessment(s), {run.penalty_invoices} penalty invoice(s), "
            f"interest {run.interest_total}, fees {run.fee_total}."
        )
        for error in run.errors:
            self.stderr.write(
                f"  batch of invoices {error['invoices'][0]}..{error['invoices'][1]} failed: {error['error']}"
            )
        if run.errors:
            raise CommandError(f"{len(run.errors)} batch(es) failed; see above.")
