"""The shell commands the hosts run (the `--command` of `gcloud ... ssh`).

Each is a bash script passed as `bash -c '<script>'`: the host's login shell reads
that line once, bash runs the script. Everything that comes from the user (paths,
gin flags, environment values) enters the script through `shlex.quote`, so gin
strings with spaces, quotes, `$` or backticks reach the program unchanged.

A job's files on each host, under <remote_dir>/jobs/<job>/ (`jobs/latest` points to
the newest job):
  worker_<W>.log     everything the process printed (W: the host's worker number)
  pid_<W>            the job's process id (a session leader: its group is the job)
  exit_code_<W>      its exit status, written when it ends
  stopped_<W>        present when stop.py stopped it
Each host writes only files with its own W, so a shared home directory is fine too.
Scripts print one machine-readable line per host (PROSOCIAL_JAX_<WHAT> key=value ...).
"""

from __future__ import annotations

import re
import shlex
from typing import Mapping, Sequence

# The chips of a TPU VM: /dev/accel* up to v4, /dev/vfio/<N> from v5 on.
DEVICE_GLOBS = ("/dev/accel*", "/dev/vfio/[0-9]*")
LIBTPU_LOCKFILE = "/tmp/libtpu_lockfile"
METADATA_WORKER = ("http://metadata.google.internal/computeMetadata/v1/instance/attributes/"
                   "agent-worker-number")
JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Settings every job gets: TF (input pipelines only) quiet; output unbuffered, so the
# log follows the run.
JOB_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}


def wrap(script: str, purpose: str) -> str:
  """The one-line command that runs `script` with bash on the host; its first line,
  a comment, says what it does (and stands for it in the echo of a real run)."""
  return "bash -c " + shlex.quote(f"# prosocial_jax: {purpose}\n{script}")


def dir_expr(remote_dir: str) -> str:
  """The remote folder as a shell word: relative paths live in $HOME."""
  if remote_dir.startswith("/"):
    return shlex.quote(remote_dir)
  return '"$HOME"/' + shlex.quote(remote_dir)


def check_job_name(job: str) -> str:
  if not JOB_NAME.fullmatch(job):
    raise ValueError(f"Job name {job!r}: use letters, digits, '.', '_' and '-' (at most 100).")
  return job


# Finds this host's worker number: $PROSOCIAL_JAX_WORKER, the TPU VM's metadata
# (agent-worker-number), else the host name.
_WORKER = f"""W="${{PROSOCIAL_JAX_WORKER:-}}"
if [ -z "$W" ]; then
  W=$(curl -sf --max-time 5 -H "Metadata-Flavor: Google" {METADATA_WORKER} 2>/dev/null || true)
fi
[ -n "$W" ] || W=$(hostname)
"""

# Ends a set of processes: TERM, up to 10 s, then KILL. `sudo -n`: device holders may
# belong to another user (root, a stale container).
_STOP_PIDS = """stop_pids() {  # needs alive()
  local pids="$*" pid left=""
  [ -n "${pids// }" ] || return 0
  for pid in $pids; do sudo -n kill -TERM "$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 100); do
    left=""
    for pid in $pids; do alive "$pid" && left="$left $pid"; done
    [ -n "$left" ] || return 0
    sleep 0.1
  done
  for pid in $left; do sudo -n kill -KILL "$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; done
}
"""

# Ends a job of ours: its whole process group (the job is a session leader). A pid
# file outlives its process; a reused pid that is not one of our jobs is left alone.
_ALIVE = """alive() {  # a process that ended but is not reaped yet (a zombie) counts as gone
  local stat
  stat=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [ "${stat:0:1}" != Z ]
}
"""
_STOP_GROUP = _ALIVE + """stop_group() {
  local pid="$1" grace="$2" waited=0
  alive "$pid" || return 0
  grep -qa prosocial_jax "/proc/$pid/cmdline" 2>/dev/null || return 0
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  while alive "$pid" && [ "$waited" -lt "$((grace * 10))" ]; do
    sleep 0.1; waited=$((waited + 1))
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
}
"""


def free_accelerator(remote_dir: str, device_globs: Sequence[str] = DEVICE_GLOBS,
                     lockfile: str = LIBTPU_LOCKFILE) -> str:
  """Frees the TPU chips before a run: stops our earlier jobs on the host, ends every
  process holding a chip (lsof, else fuser) and removes libtpu's lock file.
  Otherwise the new process finds the chips busy and JAX falls back to the CPU.
  """
  for pattern in device_globs:  # left unquoted below, so that bash expands them
    if not re.fullmatch(r"[\w/.*\[\]-]+", pattern):
      raise ValueError(f"Device pattern {pattern!r}: letters, digits and / . * [ ] - only.")
  globs = " ".join(device_globs)
  script = f"""set -uo pipefail
shopt -s nullglob
{_WORKER}{_STOP_PIDS}{_STOP_GROUP}JOBS={dir_expr(remote_dir)}/jobs
for pidfile in "$JOBS"/*/pid_"$W"; do
  [ -L "$(dirname "$pidfile")" ] && continue
  stop_group "$(cat "$pidfile")" 10
done
devices=({globs})
holders=""
if [ "${{#devices[@]}}" -gt 0 ]; then
  holders=$(sudo -n lsof -t "${{devices[@]}}" 2>/dev/null | sort -un | tr "\\n" " ")
  if [ -z "${{holders// }}" ]; then
    holders=$(sudo -n fuser "${{devices[@]}}" 2>/dev/null | tr -s " \\n" "  ")
  fi
fi
stop_pids "$holders"
sudo -n rm -f {shlex.quote(lockfile)} 2>/dev/null || rm -f {shlex.quote(lockfile)}
holders="${{holders// /,}}"; holders="${{holders#,}}"; holders="${{holders%,}}"
echo "PROSOCIAL_JAX_FREED worker=$W devices=${{#devices[@]}} stopped=${{holders:-none}}"
"""
  return wrap(script, "free the TPU chips")


def job_command(entry: str, entry_args: Sequence[str], python: str,
                env: Mapping[str, str] = ()) -> list[str]:
  """The job as an argument list: `env K=V ... python -m prosocial_jax.<entry> ARGS`."""
  environment = {**JOB_ENV, **dict(env)}
  for name in environment:
    if not ENV_NAME.fullmatch(name):
      raise ValueError(f"Environment variable name {name!r} is not a valid name.")
  return ["env", *(f"{k}={v}" for k, v in environment.items()), python, "-m",
          f"prosocial_jax.{entry}", *entry_args]


def start_job(remote_dir: str, job: str, command: Sequence[str]) -> str:
  """Starts `command` in <remote_dir>/code on the host, detached from the ssh session
  (setsid + nohup: it survives the connection), output to worker_<W>.log."""
  check_job_name(job)
  inner = shlex.join(command) + '; echo $? > "$0.tmp" && mv "$0.tmp" "$0"'
  script = f"""set -euo pipefail
{_WORKER}{_ALIVE}ROOT={dir_expr(remote_dir)}
if [ ! -d "$ROOT/code" ]; then
  echo "PROSOCIAL_JAX_ERROR worker=$W no $ROOT/code: run setup_hosts.py first" >&2; exit 3
fi
J="$ROOT/jobs/"{shlex.quote(job)}
mkdir -p "$J"
if [ -f "$J/pid_$W" ] && alive "$(cat "$J/pid_$W")"; then
  echo "PROSOCIAL_JAX_ERROR worker=$W job {job} is already running here" >&2; exit 3
fi
ln -sfn {shlex.quote(job)} "$ROOT/jobs/latest"
rm -f "$J/exit_code_$W" "$J/stopped_$W"
cd "$ROOT/code"
# shellcheck disable=SC2016  # $0 and $? belong to the inner bash
setsid nohup bash -c {shlex.quote(inner)} "$J/exit_code_$W" > "$J/worker_$W.log" 2>&1 < /dev/null &
echo $! > "$J/pid_$W"
echo "PROSOCIAL_JAX_STARTED worker=$W pid=$! log=$J/worker_$W.log"
"""
  return wrap(script, f"start job {job}")


def job_status(remote_dir: str, job: str) -> str:
  """One PROSOCIAL_JAX_STATUS line per host: running, exited (with its code), stopped,
  lost (gone without an exit status: killed with the host) or missing."""
  if job != "latest":
    check_job_name(job)
  script = f"""set -uo pipefail
{_WORKER}{_ALIVE}J={dir_expr(remote_dir)}/jobs/{shlex.quote(job)}
name=$(basename "$(readlink -f "$J" 2>/dev/null || echo "$J")")
code=""
# Liveness first: the exit status is written before the process ends, so a process
# found gone has left its status if it ever will.
if [ ! -d "$J" ]; then state=missing
elif [ -f "$J/pid_$W" ] && alive "$(cat "$J/pid_$W")"; then state=running
elif [ -f "$J/exit_code_$W" ]; then state=exited; code=$(cat "$J/exit_code_$W")
elif [ -f "$J/stopped_$W" ]; then state=stopped
elif [ -f "$J/pid_$W" ]; then state=lost
else state=missing
fi
echo "PROSOCIAL_JAX_STATUS worker=$W job=$name state=$state code=$code"
"""
  return wrap(script, f"status of job {job}")


def stop_job(remote_dir: str, job: str, grace_s: int = 30) -> str:
  """Stops the job on the host: TERM to its process group, KILL after `grace_s`."""
  if job != "latest":
    check_job_name(job)
  script = f"""set -uo pipefail
{_WORKER}{_STOP_GROUP}J={dir_expr(remote_dir)}/jobs/{shlex.quote(job)}
state=none
if [ -f "$J/pid_$W" ] && alive "$(cat "$J/pid_$W")"; then
  touch "$J/stopped_$W"
  stop_group "$(cat "$J/pid_$W")" {int(grace_s)}
  state=stopped
fi
echo "PROSOCIAL_JAX_STOPPED worker=$W state=$state"
"""
  return wrap(script, f"stop job {job}")


def tail_log(remote_dir: str, job: str, lines: int | None = None, follow: bool = False) -> str:
  """The host's log of the job: its last `lines` lines, or (follow) all of it and on,
  until the job ends."""
  if job != "latest":
    check_job_name(job)
  head = "-n +1" if lines is None else f"-n {int(lines)}"
  script = f"""set -uo pipefail
{_WORKER}J={dir_expr(remote_dir)}/jobs/{shlex.quote(job)}
LOG="$J/worker_$W.log"
"""
  if follow:
    script += """for _ in $(seq 30); do [ -f "$LOG" ] && break; sleep 1; done
exec tail """ + head + """ -F --pid="$(cat "$J/pid_$W" 2>/dev/null || echo 1)" "$LOG"
"""
  else:
    script += """echo "==> worker $W: $LOG <=="
tail """ + head + """ "$LOG" 2>/dev/null || echo "(no log)"
"""
  return wrap(script, f"{'follow' if follow else 'show'} the log of job {job}")


_LINE = re.compile(r"^PROSOCIAL_JAX_(\w+) (.*)$")


def parse_lines(output: str, kind: str) -> list[dict[str, str]]:
  """The key=value records of the PROSOCIAL_JAX_<kind> lines in `output`."""
  records = []
  for line in (output or "").splitlines():
    match = _LINE.match(line.strip())
    if match and match.group(1) == kind:
      records.append(dict(field.split("=", 1) for field in match.group(2).split()
                          if "=" in field))
  return records
