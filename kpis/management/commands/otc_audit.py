import sys

from django.core.management.base import BaseCommand

from kpis.audit import run_audit


class Command(BaseCommand):
    help = "Check every data invariant (totals, payments, numbering, penalties, balances). Exit 1 on any violation."

    def handle(self, *args, **options):
        findings = run_audit()
        if not findings:
            self.stdout.write(self.style.SUCCESS("Audit clean: every invariant holds."))
            return
        for f in findings:
            self.stdout.write(self.style.ERROR(f"[{f.check}] {f.description} ({len(f.rows)} violation(s))"))
            for row in f.rows[:200]:
                self.stdout.write(f"  {row}")
            if len(f.rows) > 200:
                self.stdout.write(f"  ... and {len(f.rows) - 200} more")
        self.stdout.write(self.style.ERROR(f"Audit found {sum(len(f.rows) for f in findings)} violation(s)."))
        sys.exit(1)
