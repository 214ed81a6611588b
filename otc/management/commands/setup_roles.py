"""Create or update the OTC roles (groups and their permissions): `python manage.py setup_roles`.

Idempotent: run it after every deploy; see otc/roles.py for what each role may do."""

from django.core.management.base import BaseCommand

from otc.roles import roles_sync


class Command(BaseCommand):
    help = "Create or update the groups Finance clerk, Finance manager, Integrator and Admin with their permissions."

    def handle(self, *args, **options):
        for result in roles_sync():
            state = "created" if result.created else "updated" if result.added or result.removed else "unchanged"
            if options["verbosity"] >= 1:
                self.stdout.write(
                    f"{result.name}: {state}, {result.permissions} permissions"
                    f" (+{len(result.added)} -{len(result.removed)})"
                )
            for codename in result.missing:
                self.stderr.write(
                    self.style.WARNING(f"{result.name}: permission {codename} does not exist (yet); skipped.")
                )
