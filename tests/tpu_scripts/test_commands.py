"""Every command: --help from the file, a --dry-run that prints the exact commands and
needs no gcloud, and errors that say what to do."""

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tpu_scripts import (create, gcloud, gpu_launch, launch, logs, setup_hosts, stop,
                         supervise, teardown, tensorboard, watch)
from tpu_scripts.gcloud import UserError

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ["create", "setup_hosts", "launch", "watch", "logs", "stop", "tensorboard",
            "supervise", "teardown", "gpu_launch", "host_check", "projections"]
TPU = ["--tpu=pod", "--project=proj", "--zone=us-central2-b"]
TRAIN = ["--gin_file=gin/canary/t5_large.gin", "--gin.MODEL_DIR='gs://b/canary run'"]


def test_every_command_has_help_and_runs_from_its_file():
  # One process runs every script's --help as `python tpu_scripts/<name>.py --help` would.
  code = ("import runpy, sys\n"
          "for name in sys.argv[1:]:\n"
          "  sys.argv = [f'tpu_scripts/{name}.py', '--help']\n"
          "  try:\n"
          "    runpy.run_path(f'tpu_scripts/{name}.py', run_name='__main__')\n"
          "  except SystemExit as e:\n"
          "    assert e.code in (0, None), (name, e.code)\n"
          "  print(f'--- {name} ok')\n")
  result = subprocess.run([sys.executable, "-S", "-c", code, *COMMANDS], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
  assert result.returncode == 0, result.stderr
  for name in COMMANDS:
    assert f"--- {name} ok" in result.stdout
  assert result.stdout.count("usage:") == len(COMMANDS)


def _dry(main, argv, capsys):
  """The commands a dry run printed (a host script spans lines inside its quotes)."""
  assert main(argv) == 0
  commands, pending = [], ""
  for line in capsys.readouterr().out.splitlines(keepends=True):
    if not pending and (line.startswith("#") or not line.strip()):
      continue
    pending += line
    try:
      commands.append(shlex.split(pending))
      pending = ""
    except ValueError:  # inside a quoted script: read on
      pass
  assert not pending
  return commands


def _commands_of(printed):
  return [next(a.split("=", 1)[1] for a in c if a.startswith("--command="))
          for c in printed if "ssh" in c]


def test_dry_runs_print_commands_and_need_no_gcloud(no_gcloud, capsys):
  printed = _dry(launch.main, [*TPU, "--accelerator_type=v4-32", "--job=j", "--dry-run", "--",
                               *TRAIN], capsys)
  ssh = [c for c in printed if c[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh"]]
  workers = [next(a for a in c if a.startswith("--worker=")) for c in ssh]
  commands = _commands_of(printed)
  # free, start, stream worker 0, status, stop on every host; then one fetch per host.
  assert workers == ["--worker=all", "--worker=all", "--worker=0", "--worker=all", "--worker=all"]
  assert "free the TPU chips" in commands[0] and "start job j" in commands[1]
  assert "follow the log" in commands[2]
  fetches = [c for c in printed if "scp" in c]
  assert [c[-1] for c in fetches] == ["--worker=0", "--worker=1", "--worker=2", "--worker=3"]
  # The printed start command is what the hosts would run, TRAIN intact inside it
  # (test_remote.py runs it): ssh's line -> bash's script -> the detached job's line.
  script = shlex.split(commands[1])[2]
  line = next(l for l in script.splitlines() if l.startswith("setsid nohup bash -c "))
  job_line = shlex.split(line)[4]
  words = list(shlex.shlex(job_line, posix=True, punctuation_chars=True))
  assert words[words.index("prosocial_jax.train") + 1:words.index(";")] == TRAIN


def test_dry_run_of_supervise_shows_the_whole_cycle(no_gcloud, capsys):
  printed = _dry(supervise.main, [*TPU, "--accelerator_type=v5p-16", "--mode=best-effort",
                                  "--jax_version=0.10.2", "--allow_dirty", "--dry-run", "--",
                                  *TRAIN], capsys)
  joined = [" ".join(c[:6]) for c in printed]
  assert "gcloud alpha compute tpus queued-resources create" in joined
  create_call = printed[joined.index("gcloud alpha compute tpus queued-resources create")]
  assert "--best-effort" in create_call and "--runtime-version=v2-alpha-tpuv5" in create_call
  assert "--accelerator-type=v5p-16" in create_call
  assert any(c[:3] == ["git", "-C", str(ROOT)] and "archive" in c for c in printed)
  assert ["gcloud", "storage", "ls", "gs://b/canary run/"] in printed
  purposes = [c.split("prosocial_jax: ", 1)[1].split("\n")[0] for c in _commands_of(printed)]
  expected = ["install ", "free the TPU chips", "check the hosts", "free the TPU chips",
              "start job train-", "follow the log of job train-", "status of job train-",
              "stop job train-"]
  assert len(purposes) == len(expected)
  assert all(p.startswith(e) for p, e in zip(purposes, expected)), purposes


@pytest.mark.parametrize("main, argv", [
    (create.main, [*TPU, "--accelerator_type=v6e-16", "--mode=spot", "--dry-run"]),
    (setup_hosts.main, [*TPU, "--accelerator_type=v4-8", "--jax_version=0.10.2", "--allow_dirty",
                        "--dry-run"]),
    (watch.main, [*TPU, "--accelerator_type=v4-8", "--dry-run"]),
    (logs.main, [*TPU, "--accelerator_type=v4-8", "--job=j", "--dry-run"]),
    (logs.main, [*TPU, "--tail=20", "--dry-run"]),
    (stop.main, [*TPU, "--dry-run"]),
    (teardown.main, [*TPU, "--dry-run"]),
    (tensorboard.main, [*TPU, "--model_dir=gs://b/r", "--on_worker", "--dry-run"]),
])
def test_other_dry_runs_touch_every_host_or_none(no_gcloud, capsys, main, argv):
  printed = _dry(main, argv, capsys)
  assert printed and all(c[0] in ("gcloud", "git") for c in printed)
  for call in printed:
    if call[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh"]:
      # Only reads address worker 0 alone: its log on the console, the newest job's name,
      # TensorBoard.
      reads = ("follow the log", "status of job", "TensorBoard")
      worker = next(a for a in call if a.startswith("--worker="))
      assert worker == "--worker=all" or any(r in " ".join(call) for r in reads)


def test_create_picks_the_runtime_of_the_generation(no_gcloud, capsys):
  for accelerator, runtime in (("v4-32", "tpu-ubuntu2204-base"), ("v5e-16", "v2-alpha-tpuv5-lite"),
                               ("v5p-8", "v2-alpha-tpuv5"), ("v6e-8", "v2-alpha-tpuv6e")):
    printed = _dry(create.main, [*TPU, f"--accelerator_type={accelerator}", "--dry-run"], capsys)
    (call,) = [c for c in printed if "create" in c]
    assert f"--runtime-version={runtime}" in call
    assert not {"--spot", "--reserved", "--best-effort"} & set(call)  # on-demand by default
  printed = _dry(create.main, [*TPU, "--accelerator_type=v4-8", "--mode=reserved", "--dry-run"],
                 capsys)
  assert "--reserved" in [c for c in printed if "create" in c][0]


@pytest.mark.parametrize("name, chips, hosts", [
    ("v4-8", 4, 1), ("v4-32", 16, 4), ("v5p-16", 8, 2), ("v5litepod-8", 8, 1),
    ("v5e-16", 16, 4), ("v6e-4", 4, 1), ("v6e-256", 256, 64)])
def test_slice_shapes(name, chips, hosts):
  shape = gcloud.slice_shape(name)
  assert (shape.chips, shape.hosts) == (chips, hosts)
  assert shape.chips_per_host == chips // hosts


@pytest.mark.parametrize("name", ["v3-8", "v4-12", "v5e-12", "tpu"])
def test_unknown_slice_types_are_refused(name):
  with pytest.raises(UserError, match=name):
    gcloud.slice_shape(name)


def test_missing_gcloud_project_and_zone_are_explained(no_gcloud):
  with pytest.raises(UserError, match=r"`gcloud` is not on PATH: install the Google Cloud CLI"):
    stop.main(TPU)
  with pytest.raises(UserError, match="No Google Cloud project: pass --project"):
    stop.main(["--tpu=pod", "--zone=z", "--dry-run"])
  with pytest.raises(UserError, match="No zone: pass --zone"):
    stop.main(["--tpu=pod", "--project=p", "--dry-run"])
  with pytest.raises(UserError, match="--remote_dir"):
    stop.main([*TPU, "--remote_dir=a b", "--dry-run"])


@pytest.mark.parametrize("message, hint", [
    ("RESOURCE_EXHAUSTED: Quota 'TPUV4sPodPerProjectPerZoneForTPUAPI' exceeded", "quota:"),
    ("There is no more capacity in the zone \"us-central2-b\"", "capacity:"),
    ("PERMISSION_DENIED: Permission 'tpu.nodes.create' denied", "roles/tpu.admin"),
    ("SERVICE_DISABLED: Cloud TPU API has not been used in project", "gcloud services enable"),
])
def test_gcloud_errors_come_with_a_hint(message, hint):
  assert hint in gcloud.explain(message)
  assert hint in str(gcloud.CommandFailed(["gcloud", "x"], 1, message))


def test_gpu_launcher_dry_run_maps_each_process_to_its_gpu(no_gcloud, capsys):
  assert gpu_launch.main(["--processes=per_gpu", "--gpus=4", "--port=2000", "--log_dir=L",
                          "--python=py", "--dry-run", "--", *TRAIN]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert len(lines) == 4
  for i, line in enumerate(lines):
    words = shlex.split(line)
    assert f"PROSOCIAL_JAX_PROCESS_ID={i}" in words and f"JAX_LOCAL_DEVICE_IDS={i}" in words
    assert "PROSOCIAL_JAX_COORDINATOR=127.0.0.1:2000" in words
    assert "PROSOCIAL_JAX_NUM_PROCESSES=4" in words and "TF_FORCE_GPU_ALLOW_GROWTH=true" in words
    assert words[words.index("py"):] == ["py", "-m", "prosocial_jax.train", *TRAIN, ">",
                                         f"L/process_{i}.log", "2>&1"]


def test_tpu_scripts_stay_out_of_the_wheel():
  import tomllib
  pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
  include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
  import fnmatch
  assert not any(fnmatch.fnmatch("tpu_scripts", pattern) for pattern in include)


def test_the_readme_projections_are_what_the_script_computes():
  from tpu_scripts import projections
  readme = (ROOT / "tpu_scripts" / "README.md").read_text()
  for scenario in projections.SCENARIOS:
    numbers = projections.project(scenario)
    step_s, hours, cost = numbers["at"](scenario.mfu)
    for text in (f"**{numbers['step_flops'] / 1e12:.2f} TFLOP**", f"**{step_s * 1e3:.0f} ms**",
                 f"**{hours:.2f} h**", f"**≈ ${cost:.0f}**", f"**{scenario.mfu:.0%}".replace("%", " %"),
                 f"${scenario.price_per_device_hour:.2f}"):
      assert text in readme, (scenario.title, text)
