"""Test-wide setup: 8 simulated CPU devices (for mesh tests), quiet TF, repeatable
property-based tests."""

import os

# Must happen before jax is imported anywhere.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

# Property-based tests draw the same examples on every run (CI judges a change, not a
# draw); HYPOTHESIS_PROFILE=explore draws new ones each run to hunt for bugs.
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
