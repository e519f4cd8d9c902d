"""The entry points' re-execution with transparent huge pages for malloc (host_memory)."""

import os
import subprocess
import sys
import textwrap

import pytest

from prosocial_jax import host_memory

GLIBC = (2, 36)


@pytest.mark.parametrize("environ, glibc, thp, wanted", [
    ({}, GLIBC, "madvise", True),
    ({}, GLIBC, "always", False),  # the kernel gives huge pages anyway
    ({}, GLIBC, "never", False),
    ({}, GLIBC, None, False),  # no THP file (not Linux, a container without /sys)
    ({}, (2, 34), "madvise", False),  # the tunable is new in glibc 2.35
    ({}, None, "madvise", False),  # musl, macOS
    ({"PROSOCIAL_JAX_HUGEPAGES": "0"}, GLIBC, "madvise", False),
    ({"PROSOCIAL_JAX_HUGEPAGES": "1"}, GLIBC, "never", True),
    ({"PROSOCIAL_JAX_HUGEPAGES": "1"}, (2, 31), "madvise", False),
    ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, GLIBC, "madvise", False),  # the user's
    ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}, GLIBC, "madvise", False),  # done already
    ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, GLIBC, "madvise", True),
])
def test_hugepages_wanted(environ, glibc, thp, wanted):
  assert host_memory.hugepages_wanted(environ, glibc, thp) is wanted


def test_a_bad_switch_value_is_named():
  with pytest.raises(ValueError, match="PROSOCIAL_JAX_HUGEPAGES must be 0, 1 or unset, got 'yes'"):
    host_memory.hugepages_wanted({"PROSOCIAL_JAX_HUGEPAGES": "yes"}, GLIBC, "madvise")


def test_the_tunable_is_appended_to_the_users_own():
  assert host_memory.with_tunable({})["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"
  env = host_memory.with_tunable({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2", "X": "1"})
  assert env == {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1", "X": "1"}


def test_thp_mode_reads_the_bracketed_choice(tmp_path):
  path = tmp_path / "enabled"
  path.write_text("always [madvise] never\n")
  assert host_memory.thp_mode(str(path)) == "madvise"
  assert host_memory.thp_mode(str(tmp_path / "missing")) is None


@pytest.mark.skipif((host_memory.glibc_version() or (0, 0)) < (2, 35),
                    reason="glibc.malloc.hugetlb is new in glibc 2.35: on this host the "
                           "commands never re-execute")
def test_a_command_reexecutes_itself_once_with_the_same_pid_and_arguments(tmp_path):
  script = tmp_path / "command.py"
  script.write_text(textwrap.dedent("""
      import os, sys
      print("run", os.getpid(), sys.argv[1:], os.environ.get("GLIBC_TUNABLES"), flush=True)
      from prosocial_jax import host_memory
      host_memory.reexec_with_hugepages()
      print(host_memory.describe())
  """))
  env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
  env["PROSOCIAL_JAX_HUGEPAGES"] = "1"
  out = subprocess.run([sys.executable, str(script), "--flag", "a b"], env=env, check=True,
                       capture_output=True, text=True).stdout.splitlines()
  first, second, described = out
  assert first.split()[1] == second.split()[1]  # the same process
  assert first.endswith("['--flag', 'a b'] None")
  assert second.endswith("['--flag', 'a b'] glibc.malloc.hugetlb=1")
  assert described.startswith("host malloc: transparent huge pages")
