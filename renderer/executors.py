"""Executors: run chunk jobs of sampled scenes in fresh Blender worker processes.

A job (built by `renderer.pool.render_split`) lists up to `chunk_size` sampled scenes, the render
settings and OUT. Every executor has `threads` (Blender threads per worker) and
`run(out, jobs)`, which renders the jobs and yields each scene's index once its image and then its
scene JSON are in OUT. Each job runs in a fresh `python -m renderer.worker` process (Blender leaks
memory across scenes), which dies with its parent.

- `LocalPool(workers)`: up to `workers` worker processes on this machine, writing straight into
  OUT; job files, logs and the workers' TMPDIR live in OUT/.jobs (emptied first, removed after).
- `RayExecutor(address)`: one Ray task per job on the cluster at `address` (see
  `infra.cluster.connect`; a connection the caller made already is used as is). A task
  reserves 1 CPU and the worker's estimated memory, runs the worker into
  TMPDIR/clevr-ds-ray/PID-XXX on its node (removed after; one left by a killed task goes at the
  node's next task) and returns the PNG and scene JSON bytes; the driver writes them into OUT
  (image first, both atomically), so nodes need no shared filesystem. A task whose Ray worker or Blender process dies is retried (`RAY_RETRIES` times).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections import deque
from pathlib import Path
from typing import Iterator, Protocol

from clevr_ds.dataset import image_path, scene_path
from infra.atomic import write_bytes, write_json
from infra.cluster import PROJECT_ROOT, ClusterError, connect
from infra.errors import disk_of

from .settings import RenderError

JOBS_DIR = ".jobs"
LOG_TAIL_LINES = 15
DISK_FULL_BYTES = 2**20  # a worker that fails with less free on its disk failed for want of space
RAY_RETRIES = 3
RAY_SCRATCH = "clevr-ds-ray"
# A low estimate of one Blender worker's peak memory (Cycles, denoising, id pass): base + per pixel.
# Measured peaks: 0.33 GB at 256 px, 3.0 GB at 2048 px, 4.6 GB at 4096 px (Cycles renders in tiles).
WORKER_BASE_BYTES = 300 * 2**20
WORKER_BYTES_PER_PIXEL = 260


def worker_bytes(width: int, height: int) -> int:
    return WORKER_BASE_BYTES + WORKER_BYTES_PER_PIXEL * width * height


def worker_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "renderer.worker", *args]


def worker_env(**extra: str) -> dict:
    path = os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, PYTHONPATH=path, **extra)


try:
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl  # Linux; looked up before any fork
except (OSError, AttributeError):
    _PRCTL = None
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it when its parent dies, so no worker outlives a killed run."""
    _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)


def _start_worker(job: dict, folder: Path, key: int) -> tuple[subprocess.Popen, Path]:
    """Start a worker on `job`; its job file, log and TMPDIR are in `folder`; stdout is a pipe. The worker
    runs in the project's folder, so it gets absolute paths."""
    folder = folder.resolve()
    job_file, log_file = folder / f"job{key}.json", folder / f"job{key}.log"
    write_json(job_file, job)
    with open(log_file, "w") as log:
        proc = subprocess.Popen(
            worker_command(str(job_file)), stdout=subprocess.PIPE, stderr=log, text=True,
            env=worker_env(TMPDIR=str(folder)), cwd=PROJECT_ROOT, preexec_fn=_die_with_parent if _PRCTL else None,
        )
    return proc, log_file


def _check_worker(proc: subprocess.Popen, log_file: Path) -> None:
    """RenderError naming why a failed worker failed: its disk (that of its log) when full, else its log's tail."""
    if proc.wait() == 0:
        return
    if shutil.disk_usage(log_file.parent).free < DISK_FULL_BYTES:  # Blender crashes without a word when it cannot write
        raise RenderError(f"Blender worker failed (exit {proc.returncode}): no space left on device on {disk_of(log_file.parent)}")
    lines = [ln for ln in log_file.read_text(errors="replace").splitlines() if ln.strip()]
    raise RenderError(f"Blender worker failed (exit {proc.returncode}): {' | '.join(lines[-LOG_TAIL_LINES:])}")


def _pump(proc: subprocess.Popen, key: int, events: queue.Queue) -> None:
    for line in proc.stdout:
        if line.startswith("done "):
            events.put((key, int(line.split()[1])))
    events.put((key, None))


class Executor(Protocol):
    threads: int  # Blender threads per worker process

    def run(self, out: Path, jobs: list[dict]) -> Iterator[int]:
        """Render `jobs`; yield each scene's index once its image and scene JSON are in `out`."""
        ...


class LocalPool:
    """Up to `workers` Blender worker processes on this machine, sharing its cores."""

    def __init__(self, workers: int = 1):
        self.workers = workers
        self.threads = max(1, (os.cpu_count() or 1) // workers)

    def run(self, out: Path, jobs: list[dict]) -> Iterator[int]:
        pending, running, events = deque(enumerate(jobs)), {}, queue.Queue()
        with _jobs_folder(out) as folder:
            try:
                while pending or running:
                    while pending and len(running) < self.workers:
                        key, job = pending.popleft()
                        running[key] = proc, _ = _start_worker(job, folder, key)
                        threading.Thread(target=_pump, args=(proc, key, events), daemon=True).start()
                    key, index = events.get()
                    if index is not None:
                        yield index
                    else:
                        _check_worker(*running.pop(key))
            finally:
                for proc, _ in running.values():
                    proc.kill()
                    proc.wait()


@contextlib.contextmanager
def _jobs_folder(out: Path):
    """OUT/.jobs, emptied first (a killed run leaves its job files there) and removed afterwards."""
    jobs = out / JOBS_DIR
    shutil.rmtree(jobs, ignore_errors=True)
    jobs.mkdir()
    try:
        yield jobs
    finally:
        shutil.rmtree(jobs, ignore_errors=True)


def render_chunk(job: dict) -> list[list[bytes]]:
    """Ray task: render `job` into a task-local folder; [PNG, scene JSON] bytes per scene, in job order."""
    folder = _task_folder()
    try:
        proc, log_file = _start_worker(dict(job, out=str(folder)), folder, 0)
        proc.stdout.read()
        _check_worker(proc, log_file)
        return [[path.read_bytes() for path in _scene_paths(folder, scene)] for scene in job["scenes"]]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _task_folder() -> Path:
    """A new folder TMPDIR/clevr-ds-ray/PID-XXX, after removing those of dead processes (killed tasks)."""
    parent = Path(tempfile.gettempdir()) / RAY_SCRATCH
    parent.mkdir(exist_ok=True)
    for old in parent.iterdir():
        if not _alive(int(old.name.partition("-")[0])):
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=parent))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _scene_paths(root: Path, scene: dict) -> tuple[Path, Path]:
    """The scene's image and scene JSON under `root`, in the order they are written."""
    return image_path(root, scene), scene_path(root, scene["split"], scene["image_index"])


class RayExecutor:
    """One Ray task per job on the cluster at `address` (see `infra.cluster.connect`), or on the caller's connection."""

    threads = 1  # each task reserves one CPU

    def __init__(self, address: str | None = None):
        self.address = address

    def run(self, out: Path, jobs: list[dict]) -> Iterator[int]:
        if not jobs:
            return
        import ray

        try:
            owner = connect(self.address)
        except ClusterError as e:
            raise RenderError(str(e)) from None
        try:
            scene = jobs[0]["scenes"][0]
            task = ray.remote(render_chunk).options(
                num_cpus=1, memory=worker_bytes(scene["width"], scene["height"]),
                max_retries=RAY_RETRIES, retry_exceptions=[RenderError],
            )
            pending = {task.remote(job): job for job in jobs}
            while pending:
                [ref], _ = ray.wait(list(pending), num_returns=1)
                job = pending.pop(ref)
                try:
                    files = ray.get(ref)
                except ray.exceptions.RayTaskError as e:
                    raise RenderError(str(e.cause).splitlines()[0]) from None
                except ray.exceptions.RayError as e:
                    raise RenderError(f"Ray task failed: {str(e).splitlines()[0]}") from None
                for scene, data in zip(job["scenes"], files):
                    for path, content in zip(_scene_paths(out, scene), data):
                        write_bytes(path, content, root=out)
                    yield scene["image_index"]
        finally:
            if owner:
                ray.shutdown()

