"""Launch prosocial_jax jobs on Cloud TPU VM slices and GPU machines, from a clone.

One command per job, each with `--help` and `--dry-run` (prints the exact commands
and runs none):

  create.py       request a TPU VM slice (queued resource), wait until ACTIVE
  setup_hosts.py  install this commit on every host, check versions and devices
  launch.py       free the accelerator, run train/eval on every host, follow it
  watch.py        follow a running job (worker 0 on the console), stop all on a failure
  logs.py         fetch each host's log of a job; tail them
  stop.py         stop a job on every host
  tensorboard.py  TensorBoard on MODEL_DIR (local, or on worker 0 through ssh)
  supervise.py    launch and keep the job alive: recreate a preempted slice, relaunch
  teardown.py     delete the slice
  gpu_launch.py   one GPU machine: one process, or one process per GPU
  slurm/train.sbatch  many GPU nodes under SLURM

Run them as `python tpu_scripts/<command>.py` (or `python -m tpu_scripts.<command>`
from the clone's root). Standard library only: the laptop needs `gcloud`, not JAX.
Not part of the installed wheel (pyproject's packages are prosocial_jax* and tasks*).
"""
