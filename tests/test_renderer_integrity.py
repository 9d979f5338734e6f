"""Data integrity of `render` (issue #10) on tiny real renders: reproducible files, one writer per
folder, no writes outside --out, bounded input with one-line errors, nothing leaked by a kill.

Oracles are independent of the code under test: PNG chunks parsed from the raw bytes, files
compared byte by byte, file trees listed before and after.
"""

from __future__ import annotations

import csv
import json
import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow

TINY = ["--resolution", "96", "--scales", "0.15-0.3", "--objects", "2-3", "--preset", "fast", "--quiet"]
TIMING = ("render_s", "annotate_s")  # wall times
EXECUTION = ("threads",)  # how the run was executed, not what it produced
MEMORY_CAP = 16 * 2**30  # address space of each CLI process and its workers


def cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python cli.py ARGS` in its own session, capped in memory and time, so that a regression
    (e.g. a 100000 px render accepted again) fails the test instead of exhausting the machine."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "cli.py"), *args], cwd=ROOT, env=env, text=True, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP,) * 2),
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its Blender workers
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def render(out: Path, *args: str, n: int = 2, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = cli("render", "--out", str(out), "--split", "val", "-n", str(n), *TINY, *args, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"render failed ({proc.returncode}): {proc.stderr}")
    return proc


def tree(root: Path) -> dict[str, bytes]:
    """Every file under root (hidden ones included) with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, i = [], 8
    while i < len(data):
        (length,) = struct.unpack(">I", data[i : i + 4])
        chunks.append((data[i + 4 : i + 8], data[i + 8 : i + 8 + length]))
        i += 12 + length
    assert chunks[-1][0] == b"IEND" and i == len(data)
    return chunks


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    """Two 96 px scenes of split 'val'; treat as read-only (copy before changing)."""
    out = tmp_path_factory.mktemp("integrity") / "ds"
    render(out)
    return out


# 1. Identical renders are identical files.


def _without_run_fields(scene: dict) -> dict:
    return dict(scene, render={k: v for k, v in scene["render"].items() if k not in TIMING + EXECUTION})


def test_two_renders_of_a_split_give_byte_identical_pngs_without_time_stamps(rendered, tmp_path):
    again = tmp_path / "again"
    render(again)
    first, second = tree(rendered), tree(again)
    pngs = [name for name in first if name.endswith(".png")]
    assert len(pngs) == 2 and set(first) == set(second)
    for name in pngs:
        assert first[name] == second[name], name
        chunks = png_chunks(first[name])
        assert not [t for t, _ in chunks if t in (b"tEXt", b"zTXt", b"iTXt", b"tIME")]
        for needle in (b"Date", b"Time", b"RenderTime", socket.gethostname().encode()):
            assert not any(needle in body for t, body in chunks if t != b"IDAT"), needle
    for name in first:
        if name.startswith("scenes/"):
            assert _without_run_fields(json.loads(first[name])) == _without_run_fields(json.loads(second[name])), name
        elif name.startswith(("meta/", "annotations/instances_")):
            assert first[name] == second[name], name
    manifest = "annotations/manifest_val.csv"
    rows = [[{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(t[manifest].decode().splitlines())] for t in (first, second)]
    assert rows[0] == rows[1] and len(rows[0]) == 2


# 2. One writer per output folder.


HOLD_LOCK = "import sys, time; from infra.lock import folder_lock\nwith folder_lock(sys.argv[1], 'test'):\n    print('held', flush=True); time.sleep(600)"


def test_a_second_writer_fails_at_once_naming_the_holder_and_a_killed_holder_does_not_block(tmp_path):
    out = tmp_path / "ds"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.perf_counter()
        line = one_line_error(render(out, check=False))
        assert time.perf_counter() - t0 < 20
        assert f"pid {holder.pid} " in line and socket.gethostname() in line and "UTC" in line
        assert not (out / "meta").exists() and not (out / "images").exists()
    finally:
        holder.kill()  # SIGKILL: the holder cannot release anything itself
        holder.wait()
    render(out)
    assert sorted(p.name for p in (out / "images" / "val").iterdir()) == ["CLEVR-DS_val_000000.png", "CLEVR-DS_val_000001.png"]


# 3. Nothing is written outside --out.


def test_resume_with_a_crafted_meta_split_is_refused_and_writes_nothing(rendered, tmp_path):
    root = tmp_path / "deep" / "er"
    out = root / "ds"
    shutil.copytree(rendered, out)
    meta_file = out / "meta" / "val.json"
    meta = json.loads(meta_file.read_text())
    meta["split"] = "../../escape"
    meta_file.write_text(json.dumps(meta))
    before = tree(tmp_path)
    proc = cli("render", "--out", str(out), "--split", "val", "--resume", "--quiet")
    assert str(meta_file) in one_line_error(proc)
    assert tree(tmp_path) == before


@pytest.mark.parametrize("split", ["../escape", "a/b", ".hidden", ""])
def test_a_split_flag_that_is_not_a_plain_name_is_refused(tmp_path, split):
    out = tmp_path / "ds"
    proc = cli("render", "--out", str(out), "--split", split, *TINY)
    assert "--split" in one_line_error(proc)
    assert list(tmp_path.iterdir()) == []


def test_the_worker_refuses_a_job_whose_scene_paths_leave_out(rendered, tmp_path):
    out = tmp_path / "ds"
    scene = json.loads((rendered / "scenes" / "val" / "CLEVR-DS_val_000000.json").read_text())
    meta = json.loads((rendered / "meta" / "val.json").read_text())
    job = {"out": str(out), "vocabulary": meta["vocabulary"], "settings": meta["render"], "min_visible_pixels": 16}
    for bad in ({"split": "../../escape"}, {"image_filename": "../../escape.png"}):
        job_file = tmp_path / "job.json"
        job_file.write_text(json.dumps(dict(job, scenes=[dict(scene, **bad)])))
        proc = subprocess.run([sys.executable, "-m", "renderer.worker", str(job_file)], capture_output=True, text=True, cwd=ROOT)
        assert proc.returncode != 0 and str(job_file) in proc.stderr.strip().splitlines()[-1]
        assert [p.name for p in tmp_path.rglob("*")] == ["job.json"]


# 4. Bounded input; every refusal is one line and leaves no meta behind.


@pytest.mark.parametrize(
    "args, message",
    [
        (["--resolution", "100000"], "limit of 16384"),
        (["-n", "2000000"], "limit of 1000000"),
        (["--objects", "2-1000"], "limit of 100"),
        (["--samples", "10000000"], "limit of 65536"),
        (["--workers", "1000"], "limit of 64"),
        (["--resolution", "16000", "--workers", "64"], "GiB of memory"),
    ],
)
def test_requests_beyond_the_bounds_fail_at_once_and_write_nothing(tmp_path, args, message):
    out = tmp_path / "ds"
    t0 = time.perf_counter()
    assert message in one_line_error(render(out, *args, check=False))
    assert time.perf_counter() - t0 < 20
    assert not out.exists()


def test_resume_of_a_meta_beyond_the_bounds_is_refused(rendered, tmp_path):
    out = tmp_path / "ds"
    shutil.copytree(rendered, out)
    meta = json.loads((out / "meta" / "val.json").read_text())
    (out / "meta" / "val.json").write_text(json.dumps(dict(meta, width=100000, height=100000)))
    before = tree(out)
    assert "limit of 16384" in one_line_error(cli("render", "--out", str(out), "--split", "val", "--resume"))
    assert tree(out) == before


def _read_only_dir(tmp_path: Path) -> Path:
    if os.geteuid() == 0:  # root writes through permission bits; sysfs refuses new files even to root
        return Path("/sys/kernel")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    return ro


@pytest.mark.parametrize("where", ["read-only", "below-a-file", "read-only-existing"])
def test_an_unwritable_out_fails_with_one_line(tmp_path, where):
    if where == "below-a-file":
        (tmp_path / "somefile").write_text("x")
        out = tmp_path / "somefile" / "sub"
    elif where == "read-only":
        out = _read_only_dir(tmp_path) / "ds"
    else:
        out = _read_only_dir(tmp_path)
    before = tree(tmp_path)
    line = one_line_error(render(out, check=False))
    assert str(out) in line
    assert tree(tmp_path) == before and not (out / "meta").exists()


GPU_DEVICES = ("/dev/nvidia0", "/dev/kfd", "/dev/dxg")


@pytest.mark.skipif(any(os.path.exists(d) for d in GPU_DEVICES), reason="this machine has a GPU")
def test_gpu_device_without_a_gpu_fails_with_one_line_and_no_meta(tmp_path):
    out = tmp_path / "ds"
    assert "GPU" in one_line_error(render(out, "--device", "gpu", check=False))
    assert not out.exists()


# 5. A killed render leaks nothing outside OUT, and the next run cleans up.


def test_a_killed_render_leaks_nothing_and_the_next_run_cleans_up(tmp_path):
    out, systmp = tmp_path / "ds", tmp_path / "systmp"
    systmp.mkdir()
    env = dict(os.environ, TMPDIR=str(systmp))
    args = [sys.executable, str(ROOT / "cli.py"), "render", "--out", str(out), "--split", "val", "-n", "6", *TINY]
    proc = subprocess.Popen(args, cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list((out / "scenes" / "val").glob("*.json")) and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its Blender worker, mid-run
    proc.wait()
    assert 1 <= len(list((out / "scenes" / "val").glob("*.json"))) < 6
    assert list(systmp.iterdir()) == []
    hidden = [p for p in out.iterdir() if p.name.startswith(".") and p.is_dir()]
    assert hidden and any(p.is_file() for d in hidden for p in d.rglob("*"))  # the kill left job files in OUT
    render(out, n=6, env=env)
    assert len(list((out / "scenes" / "val").glob("*.json"))) == 6
    assert list(systmp.iterdir()) == []
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [".lock"]
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]
