"""Shared test configuration: Hypothesis profiles.

``HYPOTHESIS_PROFILE=ci`` (set by ``.ci/run``) runs more examples with a
deadline the 2-core CI machine meets; ``dev`` (the default) is quicker.
"""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=400,
    deadline=timedelta(milliseconds=500),
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("dev", max_examples=60, deadline=timedelta(milliseconds=500))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
