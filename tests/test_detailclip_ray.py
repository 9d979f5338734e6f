"""`bench`, `encode` and `index` with `--executor ray` (issue #13) on a real two-node Ray cluster on
this machine (see tests/ray_cluster.py): the same results and byte-identical feature caches as the
local path, an actor killed mid-extraction restarted without changing a byte, a killed driver
resumed from the cache, and an unreachable cluster refused in one line with nothing written.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmark.results import load_run
from conftest import ROOT
from tests.benchmark_fixtures import TINY_BACKBONE, make_checkpoint, make_dataset, random_scenes
from tests.ray_cluster import RAY_ENV, cluster, cluster_processes, free_port, processes, wait_for  # noqa: F401 (cluster: a fixture)

pytestmark = pytest.mark.slow

TINY = ["--backbone", TINY_BACKBONE, "--pretrained", "none", "--quiet"]
BENCH = ["bench", "--model", "clip,cc-max,oracle-crop", "--templates", "short", "--cover-k", "2", *TINY]


def cli(*args: str, cluster_address: str | None = None) -> subprocess.CompletedProcess:
    """`python cli.py ARGS`, on the Ray cluster at `cluster_address` if given; asserts success."""
    ray = ["--executor", "ray", "--ray-address", cluster_address] if cluster_address else []
    proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), *args, *ray], cwd=ROOT, env=RAY_ENV, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Images of two sizes (the features group images by size)."""
    root = tmp_path_factory.mktemp("data")
    make_dataset(root / "small", random_scenes(5, seed=1), split="test")
    return make_dataset(root / "small", random_scenes(4, seed=2, side=96), split="val", side=96)


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_same_cache(cache: Path, reference: Path, entries: int) -> None:
    got, want = files(cache), files(reference)
    assert sum(name.endswith(".feat") for name in want) == entries
    assert got.keys() == want.keys() and all(got[name] == want[name] for name in want)


def test_bench_on_ray_equals_local(cluster, data, tmp_path):
    outs, stderr = {}, {}
    for run, address in (("local", None), ("ray", cluster[0])):
        out = tmp_path / run
        proc = cli(*BENCH, "--data", str(data), "--split", "test", "--out", str(out), "--extract-batch", "2", cluster_address=address)
        outs[run] = {load_run(p)["method"]: (load_run(p), np.load(p.with_suffix(".scores.npz"))) for p in out.glob("*.json")}
        stderr[run] = sorted(line.rpartition("/")[0] for line in proc.stderr.splitlines())  # "method: mAP ... -> OUT/<run file>"
    assert stderr["ray"] == [line.replace("/local", "/ray") for line in stderr["local"]]
    assert sorted(outs["ray"]) == ["cc-max", "clip", "oracle-crop"]
    for method, (record, scores) in outs["local"].items():
        ray_record, ray_scores = outs["ray"][method]
        for key in ("metrics", "method_settings", "split_hash", "n_images"):
            assert ray_record[key] == record[key], (method, key)
        assert np.array_equal(ray_scores["scores"], scores["scores"])
    assert_same_cache(tmp_path / "ray" / "feature_cache", tmp_path / "local" / "feature_cache", 3 * 5)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "fusion.pt", k=2)


def test_encode_on_ray_equals_local(cluster, data, checkpoint, tmp_path):
    stderr = {}
    for run, address in (("local", None), ("ray", cluster[0])):
        stderr[run] = cli("encode", "--checkpoint", str(checkpoint), "--images", str(data / "images"), "--out",
                          str(tmp_path / f"{run}.npz"), "--cache-dir", str(tmp_path / run), "--extract-batch", "3", "--quiet",
                          cluster_address=address).stderr  # fmt: skip
    assert stderr["ray"] == stderr["local"] == ""
    local, ray = np.load(tmp_path / "local.npz"), np.load(tmp_path / "ray.npz")
    assert np.array_equal(ray["vectors"], local["vectors"]) and list(ray["paths"]) == list(local["paths"])
    assert_same_cache(tmp_path / "ray", tmp_path / "local", 9)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[list[str], Path, str]:
    """(index command but --out and --cache-dir, the local run's folder, its stderr) on 8 images and the
    reference backbone: about a second per image here, which leaves time to kill an actor or the driver."""
    folder = tmp_path_factory.mktemp("index")
    images = make_dataset(folder / "data", random_scenes(8, seed=3, side=128), side=128) / "images"
    index = ["index", str(images), "--method", "cc-max", "--cover-k", "10", "--extract-batch", "1", "--quiet"]  # 166 windows
    stderr = cli(*index, "--out", str(folder / "index.npz"), "--cache-dir", str(folder / "cache")).stderr
    return index, folder, stderr


def _start_ray_index(index: list[str], out: Path, address: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "cli.py"), *index, "--out", str(out / "index.npz"), "--cache-dir",
                             str(out / "cache"), "--executor", "ray", "--ray-address", address], cwd=ROOT, env=RAY_ENV,
                            start_new_session=True, stderr=subprocess.PIPE, text=True)  # fmt: skip


def _entries(out: Path) -> int:
    return len(list((out / "cache").rglob("*.feat")))


def assert_same_index(out: Path, reference: Path) -> None:
    local, ray = np.load(reference / "index.npz"), np.load(out / "index.npz")
    assert np.array_equal(ray["vectors"], local["vectors"]) and np.array_equal(ray["counts"], local["counts"])
    assert_same_cache(out / "cache", reference / "cache", 8)


def _actor(groups: list[int]) -> int | None:
    """The pid of a feature actor of this cluster."""
    ours = cluster_processes(groups)
    return next((pid for pid, _, cmd in processes() if pid in ours and cmd.startswith("ray::FeatureWorker")), None)


def test_an_actor_killed_mid_extraction_is_restarted_to_the_same_index(cluster, reference, tmp_path):
    address, groups, _ = cluster
    index, local, expected = reference
    proc = _start_ray_index(index, tmp_path, address)
    try:
        wait_for(lambda: _entries(tmp_path))
        os.kill(wait_for(lambda: _actor(groups)), signal.SIGKILL)
        assert _entries(tmp_path) < 8, "the run ended before the actor was killed"
        stderr = proc.communicate(timeout=300)[1]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0 and stderr == expected.replace(str(local), str(tmp_path)), stderr
    assert_same_index(tmp_path, local)


def test_a_killed_ray_driver_resumes_from_the_cache(cluster, reference, tmp_path):
    index, local, expected = reference
    proc = _start_ray_index(index, tmp_path, cluster[0])
    wait_for(lambda: _entries(tmp_path) >= 2)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver, mid-run
    proc.wait()
    done = _entries(tmp_path)
    assert 2 <= done < 8 and not (tmp_path / "index.npz").exists()
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]
    proc = _start_ray_index(index, tmp_path, cluster[0])
    assert proc.communicate(timeout=300)[1] == expected.replace(str(local), str(tmp_path)) and proc.returncode == 0
    assert_same_index(tmp_path, local)


def test_an_unreachable_ray_address_fails_in_one_line_and_writes_nothing(data, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), *BENCH, "--data", str(data), "--split", "test", "--out",
                           str(out), "--executor", "ray", "--ray-address", f"127.0.0.1:{free_port()}"], cwd=ROOT,
                          env=RAY_ENV, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode != 0
    assert len(proc.stderr.strip().splitlines()) == 1 and "no Ray cluster answers at 127.0.0.1:" in proc.stderr
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()]
