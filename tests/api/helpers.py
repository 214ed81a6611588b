"""Small helpers shared by the API tests."""


def error_of(response) -> dict:
    """The body of a failure, checked to be the one JSON error shape: {"code", "message", "details"}."""
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert set(body) == {"code", "message", "details"}, body
    return body
