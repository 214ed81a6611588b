"""Watching a run's progress bar, which htmx swaps in place every second until the run is done."""

import time


def watch_progress(page, *, on_step=None, timeout: float = 120) -> list[int]:
    """The distinct values the bar showed, in order, until 100 or the timeout; `on_step(value)` is
    called on each new value."""
    bar = page.get_by_role("progressbar")
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = int(bar.get_attribute("aria-valuenow"))
        if not seen or seen[-1] != value:
            seen.append(value)
            if on_step:
                on_step(value)
        if value == 100:
            break
        page.wait_for_timeout(200)
    return seen
