"""`render --executor ray` (issue #13) on a real two-node Ray cluster on this machine (see
tests/ray_cluster.py): the same files as the local pool, retried tasks when a worker dies, and a
resumable driver.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clevr_ds.validate import validate
from conftest import ROOT
from tests.ray_cluster import RAY_ENV, cluster, cluster_processes, free_port, processes, wait_for  # noqa: F401 (cluster: a fixture)

pytestmark = pytest.mark.slow

TINY = ["--split", "val", "-n", "4", "--resolution", "64", "--scales", "0.15-0.3", "--objects", "2-3", "--preset", "fast", "--quiet"]
RUN_FIELDS = ("render_s", "annotate_s", "threads")  # how and how fast it ran, not what it produced


def render_args(out: Path, *args: str) -> list[str]:
    return [sys.executable, str(ROOT / "cli.py"), "render", "--out", str(out), *TINY, *args]


def render(out: Path, *args: str) -> None:
    proc = subprocess.run(render_args(out, *args), cwd=ROOT, env=RAY_ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "ds"
    render(out)
    return out


def assert_same_dataset(out: Path, reference: Path) -> None:
    """Byte-identical PNGs, meta and COCO export; equal scene JSONs and manifest rows but for run fields; nothing else."""
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == sorted(str(p.relative_to(reference)) for p in reference.rglob("*") if p.is_file())
    assert sum(f.endswith(".png") for f in files) == 4 and sum(f.startswith("scenes/") for f in files) == 4
    for name in files:
        a, b = (out / name).read_bytes(), (reference / name).read_bytes()
        if name.startswith("scenes/"):
            a, b = ({**s, "render": {k: v for k, v in s["render"].items() if k not in RUN_FIELDS}} for s in map(json.loads, (a, b)))
        elif name.startswith("annotations/manifest_"):
            a, b = ([{k: v for k, v in row.items() if k not in RUN_FIELDS} for row in csv.DictReader(x.decode().splitlines())] for x in (a, b))
        if name != ".lock":  # names the process that held it
            assert a == b, name
    assert validate(out) == []


def test_ray_cluster_render_equals_the_local_pool(cluster, local, tmp_path):
    out = tmp_path / "ds"
    render(out, "--executor", "ray", "--ray-address", cluster[0], "--chunk-size", "2")
    assert_same_dataset(out, local)
    assert json.loads(next((out / "scenes" / "val").iterdir()).read_text())["render"]["threads"] == 1


def _rendering_task(groups: list[int], skip: set[int]) -> tuple[int, int] | None:
    """(Ray worker pid, its Blender worker pid) of a task of this cluster that is rendering now."""
    procs, ours = processes(), cluster_processes(groups)
    for pid, _, cmd in procs:
        if pid in ours and pid not in skip and cmd.startswith("ray::render_chunk"):
            children = [c for c, ppid, ccmd in procs if ppid == pid and "renderer.worker" in ccmd]
            if children:
                return pid, children[0]
    return None


def test_tasks_whose_blender_or_ray_worker_is_killed_are_retried(cluster, local, tmp_path):
    address, groups, node_tmp = cluster
    out = tmp_path / "ds"
    proc = subprocess.Popen(render_args(out, "--executor", "ray", "--ray-address", address, "--chunk-size", "1"), cwd=ROOT, env=RAY_ENV, start_new_session=True, stderr=subprocess.PIPE, text=True)
    try:
        worker, blender = wait_for(lambda: _rendering_task(groups, set()))
        os.kill(blender, signal.SIGKILL)  # the task fails: retried as an exception
        other, _ = wait_for(lambda: _rendering_task(groups, {worker}))
        os.kill(other, signal.SIGKILL)  # the Ray worker dies: retried as a system failure
        stderr = proc.communicate(timeout=300)[1]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0 and stderr == "", stderr
    assert_same_dataset(out, local)
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]
    assert list((node_tmp / "clevr-ds-ray").iterdir()) == []  # the killed task's folder is gone too


def test_a_killed_ray_driver_resumes_to_the_same_dataset(cluster, local, tmp_path):
    out = tmp_path / "ds"
    args = ["--executor", "ray", "--ray-address", cluster[0], "--chunk-size", "1"]
    proc = subprocess.Popen(render_args(out, *args), cwd=ROOT, env=RAY_ENV, start_new_session=True, stderr=subprocess.DEVNULL)
    wait_for(lambda: list((out / "scenes" / "val").glob("*.json")))
    os.killpg(proc.pid, signal.SIGKILL)  # the driver, mid-run
    proc.wait()
    assert 1 <= len(list((out / "scenes" / "val").glob("*.json"))) < 4
    render(out, *args)
    assert_same_dataset(out, local)
    assert list((cluster[2] / "clevr-ds-ray").iterdir()) == []


def test_an_unreachable_ray_address_fails_at_once_with_one_line(tmp_path):
    t0 = time.perf_counter()
    proc = subprocess.run(render_args(tmp_path / "ds", "--executor", "ray", "--ray-address", f"127.0.0.1:{free_port()}"), cwd=ROOT, env=RAY_ENV, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and time.perf_counter() - t0 < 30
    assert len(proc.stderr.strip().splitlines()) == 1 and "no Ray cluster answers at 127.0.0.1:" in proc.stderr
    assert not (tmp_path / "ds").exists()  # no meta of a split that never started
