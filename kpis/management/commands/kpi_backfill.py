from datetime import date

from django.core.management.base import BaseCommand, CommandError

from billing.errors import DomainError
from kpis.services import kpi_snapshot_backfill


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"{value!r} is not a date (YYYY-MM-DD).") from exc


class Command(BaseCommand):
    help = "Recompute the daily KPI snapshots from --from to --to (both included); safe to rerun."

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="start", required=True, help="First day, YYYY-MM-DD.")
        parser.add_argument("--to", dest="end", required=True, help="Last day, YYYY-MM-DD.")

    def handle(self, *args, start, end, **options):
        first, last = _day(start), _day(end)
        try:
            written = kpi_snapshot_backfill(start=first, end=last)
        except DomainError as exc:
            raise CommandError(str(exc)) from exc
        days = (last - first).days + 1
        self.stdout.write(self.style.SUCCESS(f"Stored {written} KPI values for {days} day(s), {first} to {last}."))
