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


def pytest_collection_modifyitems(config, items):
  """Test files with `slow` tests run first, each file's tests kept together and in
  order: under `pytest -n 2` (the README's command) the long end-to-end tests start
  early and the short ones fill the end, instead of one worker finishing them alone."""
  slow_files = {item.path for item in items if item.get_closest_marker("slow")}
  items.sort(key=lambda item: item.path not in slow_files)  # a stable sort
