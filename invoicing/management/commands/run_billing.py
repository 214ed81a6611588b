import time
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from billing.errors import DomainError
from invoicing.billing_runs import run_start
from invoicing.models import BillingRun, BillingRunStatus


class Command(BaseCommand):
    help = (
        "Bill fulfilled, uninvoiced orders following each customer's billing cycle. "
        "Returns when the run is complete and prints what it billed."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--as-of",
            type=date.fromisoformat,
            default=None,
            help="Bill orders fulfilled on or before this date (YYYY-MM-DD). Default: today.",
        )
        parser.add_argument("--timeout", type=int, default=3600, help="Seconds to wait for the workers.")

    def handle(self, *args, as_of=None, timeout=3600, **options):
        try:
            run = run_start(as_of=as_of)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"Billing run #{run.pk} as of {run.as_of}: {run.total_groups} invoice(s) planned.")
        deadline = time.monotonic() + timeout
        last = -1
        while True:
            run = BillingRun.objects.get(pk=run.pk)
            if run.processed_groups != last:
                self.stdout.write(f"  {run.processed_groups}/{run.total_groups} ({run.progress_percent}%)")
                last = run.processed_groups
            if run.status != BillingRunStatus.RUNNING:
                break
            if time.monotonic() > deadline:
                raise CommandError(f"Billing run #{run.pk} not finished after {timeout} s; it goes on in the workers.")
            time.sleep(0.5)
        self.stdout.write(
            f"Billing run #{run.pk} {run.get_status_display().lower()}: {run.invoices_created} invoice(s) issued "
            f"for {run.orders_billed} order(s); {run.skipped_groups} already billed; {len(run.errors)} error(s)."
        )
        for error in run.errors:
            self.stderr.write(f"  orders {error['orders']}: {error['error']}")
        if run.status == BillingRunStatus.FAILED:
            raise CommandError("The billing run failed.")
