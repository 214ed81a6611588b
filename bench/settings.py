"""Settings for bench/orders.py: the product's settings, with the bench-only URLconf that adds the
bare "limit" view next to the product's URLs. Never used outside the benchmark."""

from otc.settings import *  # noqa: F403

ROOT_URLCONF = "bench.bare_urls"
