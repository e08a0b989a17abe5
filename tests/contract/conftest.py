"""Settings shared by the contract's state-machine runs on every backend."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

STATEFUL_SETTINGS = settings(
    max_examples=int(os.environ.get("CRMCORE_STATEFUL_EXAMPLES", "25")),
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
"""25 examples x 30 steps per backend by default, so the everyday test run stays short;
``.ci/run`` sets ``CRMCORE_STATEFUL_EXAMPLES=200`` (at least 200 x 30 per backend in CI)."""
