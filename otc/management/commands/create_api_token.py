"""Create (or show) the API token of a user: `python manage.py create_api_token USERNAME`.

Prints the key alone on stdout, so `TOKEN=$(python manage.py create_api_token bot)` works;
requests then send `Authorization: Token <key>`."""

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = "Create the user if needed (a staff user without a password) and print its API token."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--email", default="", help="E-mail for a user created by this command.")
        parser.add_argument("--reset", action="store_true", help="Replace an existing token with a new one.")

    def handle(self, *args, username: str, email: str, reset: bool, **options):
        username = username.strip()
        if not username:
            raise CommandError("Give a username.")
        User = get_user_model()
        with transaction.atomic():
            user = User.objects.filter(**{User.USERNAME_FIELD: username}).first()
            if user is None:
                user = User(**{User.USERNAME_FIELD: username}, email=email, is_staff=True)
                user.set_unusable_password()
                try:
                    user.full_clean(exclude=["password"])
                except ValidationError as exc:
                    raise CommandError("; ".join(exc.messages)) from exc
                user.save()
                self.stderr.write(f"Created staff user {username}.")
            elif not user.is_active:
                raise CommandError(f"User {username} is inactive; activate it before giving it a token.")
            if reset:
                Token.objects.filter(user=user).delete()
            token, created = Token.objects.get_or_create(user=user)
        if created:
            self.stderr.write(f"Created a token for {username}.")
        self.stdout.write(token.key)
