"""API token authentication with the token → user lookup kept in the cache.

Every API request looked its token up in the database (a join of the token and user tables):
on the hot paths (order entry by integrators) that was one query in ten and a good part of the
request's CPU. The lookup is kept in the cache (Redis when configured, shared by every process)
for `OTC_TOKEN_CACHE_SECONDS` (default 60; 0 turns it off) under a hash of the key, never the
key itself, and dropped as soon as the token or its user is saved or deleted (signals below):
rotating or deleting a token, deactivating a user or changing their password takes effect at
once. Only a change that bypasses the model's save (a queryset `update()`) waits for the expiry.
Group and permission changes need nothing: permissions are read per request, not cached here."""

import hashlib

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

DEFAULT_SECONDS = 60


def _seconds() -> int:
    return int(getattr(settings, "OTC_TOKEN_CACHE_SECONDS", DEFAULT_SECONDS))


def cache_key(key: str) -> str:
    return "otc:api-token:" + hashlib.sha256(key.encode()).hexdigest()


class CachedTokenAuthentication(TokenAuthentication):
    """DRF's TokenAuthentication (same header, same answers) with the lookup cached."""

    def authenticate_credentials(self, key):
        seconds = _seconds()
        if seconds <= 0:
            return super().authenticate_credentials(key)
        name = cache_key(key)
        found = cache.get(name)
        if found is not None:
            return found
        found = super().authenticate_credentials(key)  # raises for an unknown key or inactive user
        cache.set(name, found, seconds)
        return found


@receiver([post_save, post_delete], sender=Token, dispatch_uid="otc.auth.token_changed")
def _token_changed(sender, instance, **kwargs):
    cache.delete(cache_key(instance.key))


@receiver([post_save, post_delete], sender=get_user_model(), dispatch_uid="otc.auth.user_changed")
def _user_changed(sender, instance, **kwargs):
    keys = Token.objects.filter(user_id=instance.pk).values_list("key", flat=True)
    cache.delete_many([cache_key(key) for key in keys])
