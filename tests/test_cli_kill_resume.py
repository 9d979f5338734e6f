"""kill -9 mid-run, then run again (issue #25): nothing torn, nothing lost, nothing done twice.

Each long command is started in its own session, killed with SIGKILL (it and its workers) as soon as
it has finished part of its work, and run again with its resume flag. The second run must end with
the files an uninterrupted run writes, with equal contents (figures, vectors, weights).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from conftest import ROOT

from infra.atomic import TMP_MARK
from tests.benchmark_fixtures import TINY_BACKBONE, make_checkpoint

pytestmark = pytest.mark.slow

RANDOM = ["--backbone", TINY_BACKBONE, "--pretrained", "none"]


def start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "cli.py"), *args], cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip


def kill_when(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float = 240) -> None:
    """SIGKILL the command's process group once `ready()` holds (it must still be running then)."""
    deadline = time.time() + timeout
    while not ready():
        assert proc.poll() is None, f"the command ended before it could be killed: {proc.stderr.read()}"
        assert time.time() < deadline, "the command made no progress"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def finish(args: list[str]) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def visible(folder: Path) -> list[str]:
    """The files a reader sees (temporaries of a killed writer are not results)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and TMP_MARK not in p.name)


def test_bench_killed_after_its_first_run_resumes_with_skip_existing(tiny_dataset, tmp_path):
    args = ["bench", "--data", str(tiny_dataset), "--split", "val", *RANDOM, "--templates", "short", "--cover-k", "2",
            "--model", "clip,cc-max,grid-max,cc-mean", "--quiet"]  # fmt: skip
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    proc = start([*args, "--out", str(killed)])
    kill_when(proc, lambda: any(killed.glob("*.json")))
    runs = sorted(killed.glob("*.json"))
    assert 1 <= len(runs) < 4
    for run in runs:  # every run on disk is whole: its scores file beside it
        record = json.loads(run.read_text())
        assert (killed / record["scores_file"]).is_file()
    finish([*args, "--out", str(killed), "--skip-existing"])
    finish([*args, "--out", str(whole)])
    names = [p.name for p in sorted(whole.glob("*.json"))]
    assert [p.name for p in sorted(killed.glob("*.json"))] == names
    for name in names:
        assert json.loads((killed / name).read_text())["metrics"] == json.loads((whole / name).read_text())["metrics"]


def killed_then_resumed(args: list[str], name: str, tmp_path: Path) -> tuple[Path, Path]:
    """(output of a run killed once it saved a training state, then resumed; output of a whole run)."""
    killed, whole = tmp_path / "killed" / name, tmp_path / "whole" / name
    kill_when(start([*args, "--out", str(killed)]), lambda: any(killed.parent.glob("*.state.pt")))
    assert not killed.exists()
    finish([*args, "--out", str(killed), "--resume"])
    finish([*args, "--out", str(whole)])
    return killed, whole


def test_train_killed_after_a_checkpoint_resumes_to_the_same_weights(tiny_dataset, tmp_path):
    args = ["train", "--data", str(tiny_dataset), "--split", "val", "--val-split", "val", *RANDOM, "--size", "tiny", "--cover-k", "2",
            "--templates", "short", "--epochs", "40", "--patience", "0", "--batch-size", "2", "--checkpoint-every", "1",
            "--cache-dir", str(tmp_path / "cache"), "--quiet"]  # fmt: skip
    a, b = (torch.load(p, weights_only=True)["state_dict"] for p in killed_then_resumed(args, "f.pt", tmp_path))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_train_backbone_killed_after_a_checkpoint_resumes_to_the_same_weights(tiny_dataset, tmp_path):
    from safetensors.torch import load_file

    args = ["train-backbone", "--data", str(tiny_dataset), "--split", "val", "--val-split", "val", "--backbone", TINY_BACKBONE,
            "--steps", "60", "--batch-size", "4", "--images-per-batch", "2", "--eval-every", "30", "--checkpoint-every", "2",
            "--templates", "short", "--quiet"]  # fmt: skip
    a, b = (load_file(str(p)) for p in killed_then_resumed(args, "b.safetensors", tmp_path))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("command, compared", [("encode", ("vectors", "paths")), ("index", ("vectors", "counts"))])
def test_an_encoder_killed_mid_run_leaves_no_output_and_the_cache_serves_the_rerun(tiny_dataset, tmp_path, command, compared):
    checkpoint = make_checkpoint(tmp_path / "fusion.pt", k=2)
    cache, images = tmp_path / "cache", str(tiny_dataset / "images")
    args = {"encode": ["encode", "--checkpoint", str(checkpoint), "--images", images],
            "index": ["index", images, "--checkpoint", str(checkpoint), "--method", "detailclip"]}[command]
    args += ["--extract-batch", "1", "--cache-dir", str(cache), "--quiet"]
    out, whole = tmp_path / "v.npz", tmp_path / "whole.npz"
    proc = start([*args, "--out", str(out)])
    kill_when(proc, lambda: cache.is_dir() and len(visible(cache)) >= 1)
    assert not out.exists()
    finish([*args, "--out", str(out)])
    finish([*args, "--out", str(whole), "--cache-dir", "none"])
    with np.load(out) as a, np.load(whole) as b:
        assert all(np.array_equal(a[key], b[key]) for key in compared)
