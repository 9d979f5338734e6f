"""Every command under hostile conditions (issue #25): bad input, a read-only disk, a full disk, a file
in the way of the output, a symlinked folder leaving the input's root, a concurrent writer.

Each cell runs the real command in-process (`cli.main`) on tiny real data and checks the promise of
docs/safety.md: exit non-zero with one `error:` line and no traceback, nothing half-written where the
output goes, nothing read or written outside a root. Kills (-9) mid-run are tested beside each
command's resume tests (test_renderer_integrity, test_cli_kill_resume, test_*_safety); docs/safety.md
lists every cell with its outcome.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
from conftest import ROOT, TINY_RENDER_ARGS

from cli import main
from infra.lock import LOCK_NAME
from tests.benchmark_fixtures import TINY_BACKBONE, make_checkpoint
from tests.hostile_fs import FILLER, file_in_the_way, full_disk, read_only_disk, symlink_out, tree
from tests.test_clevr_ds_integrity import edit_json

pytestmark = pytest.mark.slow

RANDOM = ["--backbone", TINY_BACKBONE, "--pretrained", "none"]
FAST_BENCH = [*RANDOM, "--templates", "short", "--cover-k", "2", "--quiet"]
BACKBONE_ARGS = ["--split", "val", "--val-split", "val", "--backbone", TINY_BACKBONE, "--steps", "2", "--batch-size", "4",
                 "--images-per-batch", "2", "--eval-every", "2", "--checkpoint-every", "2", "--templates", "short", "--quiet"]  # fmt: skip


@dataclass(frozen=True)
class World:
    """Inputs every command can use: a CLEVR-DS folder (split 'val'), a fusion checkpoint, a results
    folder with two runs and their scores, and a search index."""

    data: Path
    checkpoint: Path
    results: Path
    index: Path


@pytest.fixture(scope="module")
def world(tiny_dataset, tmp_path_factory) -> World:
    base = tmp_path_factory.mktemp("world")
    data = base / "data"
    shutil.copytree(tiny_dataset, data)
    checkpoint = make_checkpoint(base / "fusion.pt", k=2)
    results = base / "results"
    assert main(["bench", "--data", str(data), "--split", "val", "--out", str(results), "--model", "clip,cc-max",
                 *FAST_BENCH]) == 0  # fmt: skip
    index = base / "index.npz"
    assert main(["index", str(data / "images"), "--out", str(index), "--method", "clip", *RANDOM, "--quiet"]) == 0
    return World(data, checkpoint, results, index)


# Each writing command: its argv with its output placed at OUT (a folder that may not exist yet).
WRITERS: dict[str, Callable[[World, Path], list[str]]] = {
    "render": lambda w, out: ["render", "--out", str(out / "ds"), "--split", "val", "-n", "1", *TINY_RENDER_ARGS],
    "export": lambda w, out: ["export", str(out / "data"), "--format", "coco"],
    "export --format dota": lambda w, out: ["export", str(w.data), "--format", "dota", "--out", str(out / "dota")],
    "train": lambda w, out: ["train", "--data", str(w.data), "--split", "val", "--val-split", "val", *RANDOM, "--size", "tiny",
                             "--cover-k", "2", "--templates", "short", "--epochs", "1", "--batch-size", "2", "--cache-dir", "none",
                             "--out", str(out / "fusion.pt"), "--quiet"],
    "encode": lambda w, out: ["encode", "--checkpoint", str(w.checkpoint), "--images", str(w.data / "images"),
                              "--out", str(out / "vectors.npz"), "--quiet"],
    "train-backbone": lambda w, out: ["train-backbone", "--data", str(w.data), "--out", str(out / "backbone.safetensors"),
                                      *BACKBONE_ARGS],
    "zero-shot": lambda w, out: ["zero-shot", "--data", str(w.data), "--split", "val", *RANDOM, "--templates", "short",
                                 "--out", str(out / "zero-shot.json"), "--quiet"],
    "bench": lambda w, out: ["bench", "--data", str(w.data), "--split", "val", "--out", str(out / "results"), "--model", "clip",
                             *FAST_BENCH],
    "leaderboard": lambda w, out: ["leaderboard", str(w.results), "--out", str(out / "board.csv")],
    "report": lambda w, out: ["report", str(w.results), "--data", str(w.data), "--split", "val", "--out", str(out / "report.html")],
    "index": lambda w, out: ["index", str(w.data / "images"), "--out", str(out / "index.npz"), "--method", "clip", *RANDOM,
                             "--quiet"],
    "search": lambda w, out: ["search", str(w.index), "a red cube", "--sheet", str(out / "sheet.png")],
}
# Commands that write into their input (export writes the dataset's annotations): OUT holds a copy of it.
WRITES_INTO_INPUT = {"export": "data"}


def run(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def error_line(code: int, err: str) -> str:
    """The command failed with one `error:` line (warnings may precede it) and no traceback."""
    lines = err.strip().splitlines()
    assert code != 0 and lines and "Traceback" not in err, (code, err)
    assert lines[-1].startswith("error: ") and all(line.startswith("warning:") for line in lines[:-1]), err
    return lines[-1]


def written(root: Path) -> dict[str, bytes]:
    """The files under root less the disk's filler and lock files (a writer may create its lock)."""
    return {name: data for name, data in tree(root).items()
            if not Path(name).name.startswith(FILLER) and not name.endswith(LOCK_NAME)}  # fmt: skip


def staged(world: World, command: str, where: Path) -> Path:
    """`where` with a copy of the command's input when it writes into it."""
    where.mkdir(parents=True, exist_ok=True)
    if command in WRITES_INTO_INPUT:
        shutil.copytree(getattr(world, WRITES_INTO_INPUT[command]), where / WRITES_INTO_INPUT[command])
    return where


@pytest.mark.parametrize("command", list(WRITERS))
def test_an_output_on_a_read_only_disk_is_one_line(capsys, world, tmp_path, command):
    contents = staged(world, command, tmp_path / "stage")
    with read_only_disk(tmp_path / "ro", contents) as out:
        before = written(out)
        line = error_line(*run(capsys, WRITERS[command](world, out))[::2])
        assert "read-only file system" in line.lower() and str(out) in line
        assert written(out) == before


@pytest.mark.parametrize("command", list(WRITERS))
def test_an_output_on_a_full_disk_is_one_line_and_leaves_nothing(capsys, world, tmp_path, command):
    contents = staged(world, command, tmp_path / "stage")
    with full_disk(tmp_path / "full", contents, size_mib=8) as out:
        before = written(out)
        line = error_line(*run(capsys, WRITERS[command](world, out))[::2])
        assert "no space left on device" in line.lower() and str(out) in line
        assert written(out) == before  # no partial file, no temporary


@pytest.mark.parametrize("command", [c for c in WRITERS if c not in WRITES_INTO_INPUT])
def test_an_output_below_a_file_is_one_line(capsys, world, tmp_path, command):
    out = file_in_the_way(tmp_path)
    line = error_line(*run(capsys, WRITERS[command](world, out))[::2])
    assert str(out.parent) in line
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.parent.name]


# Commands that read a CLEVR-DS folder: a symlinked `scenes/` leaving it is refused, nothing is read there.
DATASET_READERS = {
    "validate": lambda data, out: ["validate", str(data)],
    "export": lambda data, out: ["export", str(data), "--format", "coco"],
    "bench": lambda data, out: ["bench", "--data", str(data), "--split", "val", "--out", str(out), "--model", "clip",
                                *FAST_BENCH],
    "train": lambda data, out: ["train", "--data", str(data), "--split", "val", "--val-split", "val", *RANDOM, "--size",
                                "tiny", "--cover-k", "2", "--templates", "short", "--epochs", "1", "--batch-size", "2",
                                "--cache-dir", "none", "--out", str(out / "fusion.pt"), "--quiet"],
    "zero-shot": lambda data, out: ["zero-shot", "--data", str(data), "--split", "val", *RANDOM, "--templates", "short",
                                    "--quiet"],
    "train-backbone": lambda data, out: ["train-backbone", "--data", str(data), "--out", str(out / "b.safetensors"),
                                         *BACKBONE_ARGS],
    "render --resume": lambda data, out: ["render", "--out", str(data), "--split", "val", "--resume", "--quiet"],
}


@pytest.mark.parametrize("command", list(DATASET_READERS))
@pytest.mark.parametrize("folder", ["scenes", "meta", "annotations"])
def test_a_symlinked_dataset_folder_leaving_the_root_is_refused(capsys, world, tmp_path, command, folder):
    data = tmp_path / "data"
    shutil.copytree(world.data, data)
    outside = symlink_out(data, folder, tmp_path / "outside")
    before = tree(outside)
    code, _, err = run(capsys, DATASET_READERS[command](data, tmp_path / "out"))
    if folder == "annotations" and command not in ("validate", "export", "render --resume"):
        assert code == 0, err  # these commands never touch the exports
    else:
        assert code != 0 and "Traceback" not in err and "leaves" in err, err
    assert tree(outside) == before


# Writers of a folder hold its lock: a second writer is one line naming the first, and writes nothing.
LOCKED_WRITERS: dict[str, Callable[[World], tuple[list[str], Path]]] = {
    "export": lambda w: (["export", str(w.data), "--format", "coco"], w.data),
    "export --format dota": lambda w: (WRITERS["export --format dota"](w, w.results), w.results / "dota"),
    "render --resume": lambda w: (["render", "--out", str(w.data), "--split", "val", "--resume", "--quiet"], w.data),
    "bench": lambda w: (DATASET_READERS["bench"](w.data, w.results), w.results),
    "train": lambda w: (DATASET_READERS["train"](w.data, w.results), w.results / "fusion.pt"),
    "train-backbone": lambda w: (DATASET_READERS["train-backbone"](w.data, w.results), w.results / "b.safetensors"),
}
HOLD = "import sys, time\nfrom infra.lock import {lock}\nwith {lock}(sys.argv[1], 'test'):\n    print('held', flush=True); time.sleep(600)"


@pytest.mark.parametrize("command", list(LOCKED_WRITERS))
def test_a_concurrent_writer_of_the_same_folder_is_refused(capsys, world, tmp_path, command):
    from infra.lock import folder_lock

    copy = World(tmp_path / "data", world.checkpoint, tmp_path / "results", world.index)
    shutil.copytree(world.data, copy.data)
    shutil.copytree(world.results, copy.results)
    argv, target = LOCKED_WRITERS[command](copy)
    lock = "folder_lock" if target.suffix == "" else "output_lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD.format(lock=lock), str(target)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True)  # fmt: skip
    folder = target if lock == "folder_lock" else target.parent
    try:
        assert holder.stdout.readline().strip() == "held"
        before = written(folder)
        line = error_line(*run(capsys, argv)[::2])
        assert "in use by another writer" in line and str(target) in line and written(folder) == before
    finally:
        holder.kill()
        holder.wait()
    with folder_lock(folder, "test"):
        pass


# Bad input: a corrupt or hostile file where each command reads one.
def _deep(path: Path) -> None:
    path.write_text("[" * 200_000 + "]" * 200_000)


def _bad_run(results: Path) -> None:
    run_file = sorted(results.glob("*.json"))[0]
    record = json.loads(run_file.read_text())
    run_file.write_text(json.dumps(dict(record, split_hash=12345)))


BAD_INPUTS: dict[str, tuple[Callable[[World, Path], list[str]], Callable[[World], None]]] = {
    "export: a scene nested 200k deep": (lambda w, out: ["export", str(w.data), "--format", "coco"],
                                         lambda w: _deep(sorted((w.data / "scenes" / "val").glob("*.json"))[0])),
    "export: --split ../../x": (lambda w, out: ["export", str(w.data), "--format", "coco", "--split", "../../x"], lambda w: None),
    "export --format dota: a mask of another size": (
        WRITERS["export --format dota"],
        lambda w: edit_json(sorted((w.data / "scenes" / "val").glob("*.json"))[0],
                            lambda s: s["objects"][0]["mask"].update(size=[64, 64]))),
    "bench: a meta nested 200k deep": (lambda w, out: DATASET_READERS["bench"](w.data, out), lambda w: _deep(w.data / "meta" / "val.json")),
    "leaderboard: split_hash 12345": (lambda w, out: ["leaderboard", str(w.results), "--out", str(out / "b.csv")], lambda w: _bad_run(w.results)),
    "report: a scores_file outside": (lambda w, out: ["report", str(w.results), "--out", str(out / "r.html")],
                                      lambda w: [p.write_text(json.dumps(dict(json.loads(p.read_text()), scores_file="../../../../etc/passwd")))
                                                 for p in w.results.glob("*.json")]),
    "encode: a checkpoint of random bytes": (WRITERS["encode"], lambda w: w.checkpoint.write_bytes(b"PK\x03\x04" + bytes(range(256)))),
    "search: an index of random bytes": (WRITERS["search"], lambda w: w.index.write_bytes(bytes(range(256)) * 4)),
    "render: --scales 1e-300-0.1": (lambda w, out: ["render", "--out", str(out / "ds"), "--scales", "1e-300-0.1", "--quiet"], lambda w: None),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_and_writes_nothing(capsys, world, tmp_path, case):
    argv, spoil = BAD_INPUTS[case]
    copy = World(tmp_path / "data", tmp_path / "fusion.pt", tmp_path / "results", tmp_path / "index.npz")
    shutil.copytree(world.data, copy.data)
    shutil.copytree(world.results, copy.results)
    shutil.copy(world.checkpoint, copy.checkpoint)
    shutil.copy(world.index, copy.index)
    spoil(copy)
    out = tmp_path / "out"
    before = written(tmp_path)
    error_line(*run(capsys, argv(copy, out))[::2])
    assert written(tmp_path) == before and not out.exists()


def test_validate_reads_a_dataset_on_a_read_only_disk(capsys, world, tmp_path):
    with read_only_disk(tmp_path / "ro", world.data) as data:
        code, out, err = run(capsys, ["validate", str(data)])
        assert code == 0 and "OK" in out, err
