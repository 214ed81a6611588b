"""Browser tests: a real Chromium driven by Playwright against Django's live server.

Playwright's sync API keeps an event loop running in the main thread, which makes Django refuse
ORM calls from test code (the tests set up data in that thread). DJANGO_ALLOW_ASYNC_UNSAFE lifts
that, but only while Playwright runs: set for the whole session it would leak into everything
else, including the `check --deploy` subprocess of the ops tests, which rightly refuses it.
Set OTC_SCREENSHOTS=/some/dir to keep a full-page screenshot of every page the tests open.
"""

import os

import pytest

CHROMIUM = os.environ.get("OTC_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "pw-Secret-123"  # tests.factories.UserFactory's password


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    with pytest.MonkeyPatch.context() as env:
        env.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
            )
            yield browser
            browser.close()


@pytest.fixture
def page(chromium, live_server):
    """A fresh browser tab on the live server; fails the test on any JavaScript or console error."""
    context = chromium.new_context(base_url=live_server.url, viewport={"width": 1366, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    problems: list[str] = []
    tab.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    tab.on("console", lambda msg: problems.append(f"console: {msg.text}") if msg.type == "error" else None)
    yield tab
    context.close()
    assert not problems, problems


@pytest.fixture
def login(page, user):
    """Sign in through the login form as the `user` fixture (a superuser)."""

    def sign_in():
        page.goto("/accounts/login/")
        page.get_by_label("Username").fill(user.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/kpis/")
        return page

    return sign_in


@pytest.fixture
def screenshot(page):
    directory = os.environ.get("OTC_SCREENSHOTS")

    def take(name: str) -> None:
        if directory:
            os.makedirs(directory, exist_ok=True)
            page.screenshot(path=os.path.join(directory, f"{name}.png"), full_page=True)

    return take
