"""API tokens are looked up once and then served from the cache, and every change to the token
or its user takes effect on the next request (otc/auth.py)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from otc.auth import cache_key
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/customers/"


def token_queries(client) -> tuple[int, int]:
    """(status, how many queries read the token table) of one GET."""
    with CaptureQueriesContext(connection) as queries:
        status = client.get(URL).status_code
    return status, sum('"authtoken_token"' in q["sql"] for q in queries.captured_queries)


@pytest.fixture
def bot():
    user = UserFactory(username="erp-bot", is_staff=True)
    token = Token.objects.create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return user, token, client


def test_the_token_is_read_once_then_served_from_the_cache(bot):
    _, _, client = bot
    assert token_queries(client) == (200, 1)
    assert token_queries(client) == (200, 0)
    assert token_queries(client) == (200, 0)


def test_the_cache_key_is_a_hash_never_the_token(bot):
    _, token, client = bot
    client.get(URL)
    assert token.key not in cache_key(token.key)


def test_a_deleted_token_is_refused_on_the_next_request(bot):
    _, token, client = bot
    assert token_queries(client) == (200, 1)
    token.delete()
    assert client.get(URL).status_code == 401


def test_a_deactivated_user_is_refused_on_the_next_request(bot):
    user, _, client = bot
    assert token_queries(client) == (200, 1)
    user.is_active = False
    user.save()
    assert client.get(URL).status_code == 401


def test_a_rotated_token_replaces_the_old_one_at_once(bot):
    user, token, client = bot
    assert token_queries(client) == (200, 1)
    token.delete()
    fresh = Token.objects.create(user=user)
    assert client.get(URL).status_code == 401
    client.credentials(HTTP_AUTHORIZATION=f"Token {fresh.key}")
    assert client.get(URL).status_code == 200


def test_an_unknown_token_is_never_cached(bot):
    _, _, client = bot
    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    assert token_queries(client) == (401, 1)
    assert token_queries(client) == (401, 1)


def test_zero_seconds_turns_the_cache_off(bot, settings):
    settings.OTC_TOKEN_CACHE_SECONDS = 0
    _, _, client = bot
    assert token_queries(client) == (200, 1)
    assert token_queries(client) == (200, 1)


def test_the_redis_cache_reuses_one_client_and_still_reads_writes_and_expires():
    import os

    from otc.cache import RedisCache

    if not os.environ.get("REDIS_URL"):
        pytest.skip("no Redis here")
    cache = RedisCache(os.environ["REDIS_URL"], {"KEY_PREFIX": "otc-test-cache"})
    client = cache._cache.get_client("a")
    assert cache._cache.get_client("b", write=True) is client
    cache.set("reuse", {"n": 1}, 30)
    assert cache.get("reuse") == {"n": 1}
    assert cache.get_many(["reuse", "none"]) == {"reuse": {"n": 1}}
    cache.delete("reuse")
    assert cache.get("reuse") is None
    # A pool made anew (Django keeps them per server) gets its own client.
    cache._cache._pools.clear()
    assert cache._cache.get_client("a") is not client
