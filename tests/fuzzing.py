"""Hypothesis settings shared by the fuzz tests: reproducible in CI and bounded in examples, not in time."""

from __future__ import annotations

import hypothesis
from hypothesis import HealthCheck


def fuzz_settings(examples: int) -> hypothesis.settings:
    return hypothesis.settings(
        max_examples=examples,
        deadline=None,  # requests reach the real Triton: their time is measured and bounded by the tests themselves
        derandomize=True,
        database=None,
        # one app per test, shared by its examples; generated bodies may be slow to build or large
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],  # no shrinking: reports name the case as sent
    )
