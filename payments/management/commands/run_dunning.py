from datetime import date

from django.core.management.base import BaseCommand, CommandError

from payments.dunning import dunning_run


class Command(BaseCommand):
    help = (
        "Write and send the payment reminders due as of a date: one consolidated reminder per customer, "
        "each level once per invoice. Runs in this process and prints what it did."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--as-of", type=date.fromisoformat, default=None, help="Remind as of this date (YYYY-MM-DD); default today."
        )

    def handle(self, *args, as_of=None, **options):
        result = dunning_run(as_of=as_of)
        outcomes = ", ".join(f"{n} {what}" for what, n in sorted(result.delivered.items())) or "nothing to send"
        self.stdout.write(
            f"Dunning as of {result.as_of}: {result.customers} customer(s) due, "
            f"{len(result.notices)} reminder(s) written; delivery: {outcomes}."
        )
        if result.failed:
            raise CommandError(f"No reminder could be written for customer id(s) {result.failed}; see the log.")
