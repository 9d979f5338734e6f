"""Issue #25 for `bench`, `leaderboard`, `report` and `index`: hostile disks give one line naming the file
and leave whole sets of files or none; readers read only what they own; every file they read is
checked (schema, bounds) and fuzzed: a domain error (ToolkitError) or a valid object, nothing else."""

from __future__ import annotations

import copy
import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from benchmark.evaluation import evaluate
from benchmark.leaderboard import build_table, to_markdown
from benchmark.results import SavedScores, load_run, load_scores, scores_writer, write_run
from benchmark.sources import Source, coco_source, dota_source
from infra.errors import ToolkitError
from infra.lock import LOCK_NAME
from tests.benchmark_fixtures import TINY_BACKBONE, make_dataset, random_scenes
from tests.conftest import run_cli
from tests.hostile_fs import FILLER, file_in_the_way, full_disk, one_line_error, read_only_disk, symlink_out, tree
from tests.test_benchmark_leaderboard import make_run, records

FAST = ["--backbone", TINY_BACKBONE, "--pretrained", "none", "--templates", "short", "--cover-k", "2", "--quiet"]
INDEX_FAST = ["--backbone", TINY_BACKBONE, "--pretrained", "none", "--quiet"]
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DEEP = "[" * 200_000 + "]" * 200_000


def leave_free(disk: Path, kib: int) -> None:
    """Give back `kib` KiB of a full disk: room for small files, not for large ones."""
    filler = disk / FILLER
    os.truncate(filler, filler.stat().st_size - kib * 1024)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("safety") / "data", random_scenes(6, seed=2))


@pytest.fixture(scope="module")
def bench_results(tmp_path_factory, data) -> Path:
    """A clip run of `data` with its saved scores; copy before changing."""
    out = tmp_path_factory.mktemp("bench") / "results"
    run_cli("bench", "--data", str(data), "--out", str(out), "--cache-dir", "none", "--model", "clip", *FAST)
    return out


@pytest.fixture
def results(tmp_path) -> Path:
    """A results folder of two comparable runs (no scores)."""
    folder = tmp_path / "results"
    for run in (make_run("cc-mean", 2.0, 1), make_run("clip", 1.8, 2)):
        write_run(folder / f"{run['run_id']}.json", records(run)[0][0])
    return folder


def run_json(results: Path) -> Path:
    return next(p for p in results.glob("*.json") if p.name != "leaderboard.json")


# 1. Hostile disks: one line naming the file, whole sets or nothing.


def test_bench_on_a_nearly_full_disk_leaves_neither_scores_nor_record(tmp_path, data):
    """Room for the scores file but not for the run record: both or neither (used to leave the .scores.npz)."""
    with full_disk(tmp_path / "disk", size_mib=4) as disk:
        leave_free(disk, 16)
        proc = run_cli("bench", "--data", str(data), "--out", str(disk / "res"), "--cache-dir", "none", "--model", "clip",
                       *FAST, check=False)  # fmt: skip
        line = one_line_error(proc)
        assert ".json: no space left on device on the disk mounted at" in line and ".tmp-" not in line
        assert not [name for name in tree(disk / "res") if not name.startswith(".")]


def test_bench_on_a_full_disk_is_one_line(tmp_path, data):
    """The scores archive failed twice: once in the command, once more (a traceback) when it was collected.
    The results folder and its lock file exist before the disk fills, so the lock can be taken."""
    stage = tmp_path / "stage"
    (stage / "res").mkdir(parents=True)
    (stage / "res" / LOCK_NAME).write_text("x" * 4000)
    with full_disk(tmp_path / "disk", stage, size_mib=4) as disk:
        proc = run_cli("bench", "--data", str(data), "--out", str(disk / "res"), "--cache-dir", "none", "--model", "clip",
                       *FAST, check=False)  # fmt: skip
        assert ".scores.npz: no space left on device" in one_line_error(proc)
        assert not [name for name in tree(disk / "res") if not name.startswith(".")]


@pytest.mark.parametrize("hostile", ["read-only", "file in the way"])
def test_bench_out_on_a_read_only_disk_or_below_a_file_is_one_line(tmp_path, data, hostile):
    if hostile == "file in the way":
        proc = run_cli("bench", "--data", str(data), "--out", str(file_in_the_way(tmp_path)), "--model", "clip", *FAST, check=False)
        assert "a-file/out" in one_line_error(proc) and "not a directory" in one_line_error(proc)
        return
    with read_only_disk(tmp_path / "disk") as disk:
        proc = run_cli("bench", "--data", str(data), "--out", str(disk / "res"), "--cache-dir", "none", "--model", "clip",
                       *FAST, check=False)  # fmt: skip
        assert "read-only file system" in one_line_error(proc)


def test_leaderboard_on_a_nearly_full_disk_writes_all_files_or_none(tmp_path, results):
    """Room for the CSV and markdown, not for the plots: none of them (used to leave the CSV without plots)."""
    with full_disk(tmp_path / "disk", results, size_mib=4) as copy_:
        before = tree(copy_)
        leave_free(copy_.parent, 16)
        line = one_line_error(run_cli("leaderboard", str(copy_), check=False))
        assert "leaderboard." in line and "no space left on device" in line and ".tmp-" not in line
        assert tree(copy_) == before


def test_leaderboard_on_a_read_only_disk_names_its_file_not_a_temporary(tmp_path, results):
    with read_only_disk(tmp_path / "disk", results) as copy_:
        line = one_line_error(run_cli("leaderboard", str(copy_), check=False))
        assert line.startswith(f"error: {copy_ / 'leaderboard.csv'}: read-only file system"), line


def test_leaderboard_out_below_a_file_is_one_line(tmp_path, results):
    line = one_line_error(run_cli("leaderboard", str(results), "--out", str(file_in_the_way(tmp_path) / "b.csv"), check=False))
    assert "a-file/out: not a directory" in line


@pytest.mark.parametrize("hostile", ["read-only", "full", "file in the way"])
def test_report_on_hostile_disks_is_one_line_naming_the_report(tmp_path, results, hostile):
    if hostile == "file in the way":
        line = one_line_error(run_cli("report", str(results), "--out", str(file_in_the_way(tmp_path) / "r.html"), check=False))
        assert "a-file/out: not a directory" in line
        return
    disk = read_only_disk if hostile == "read-only" else full_disk
    with disk(tmp_path / "disk") as where:
        line = one_line_error(run_cli("report", str(results), "--out", str(where / "r.html"), check=False))
        assert line.startswith(f"error: {where / 'r.html'}: "), line
        assert not (where / "r.html").exists()


@pytest.mark.parametrize("hostile", ["read-only", "full"])
def test_index_on_hostile_disks_is_one_line_naming_the_index(tmp_path, data, hostile):
    disk = read_only_disk if hostile == "read-only" else full_disk
    with disk(tmp_path / "disk") as where:
        out = where / "index.npz"
        proc = run_cli("index", str(data / "images"), "--out", str(out), "--method", "clip", "--cache-dir", "none",
                       *INDEX_FAST, check=False)  # fmt: skip
        assert one_line_error(proc).startswith(f"error: {out}: "), proc.stderr
        assert not [p for p in where.iterdir() if not p.name.startswith(".")]


# 2. Readers read only what they own.


@pytest.mark.parametrize("scores_file", ["../../../../etc/passwd", "/etc/passwd", "sub/x.scores.npz"])
def test_report_refuses_a_scores_file_that_is_not_a_plain_name(tmp_path, bench_results, scores_file):
    results = shutil.copytree(bench_results, tmp_path / "results")
    record = json.loads(run_json(results).read_text())
    run_json(results).write_text(json.dumps({**record, "scores_file": scores_file}))
    line = one_line_error(run_cli("report", str(results), "--out", str(tmp_path / "r.html"), check=False))
    assert run_json(results).name in line and "scores_file" in line and "not a plain name" in line


def test_report_refuses_a_scores_file_linked_out_of_the_results_folder(tmp_path, bench_results, data):
    results = shutil.copytree(bench_results, tmp_path / "results")
    scores = next(results.glob("*.scores.npz"))
    shutil.move(scores, tmp_path / "outside.npz")
    scores.symlink_to(tmp_path / "outside.npz")
    line = one_line_error(run_cli("report", str(results), "--data", str(data), "--out", str(tmp_path / "r.html"), check=False))
    assert "leaves" in line and scores.name in line


def test_report_galleries_read_the_saved_scores(tmp_path, bench_results, data):
    out = tmp_path / "r.html"
    run_cli("report", str(bench_results), "--data", str(data), "--out", str(out), "--gallery-queries", "1")
    assert "class='hit'" in out.read_text() or "class='miss'" in out.read_text()


def test_a_corrupt_scores_file_is_one_line(tmp_path, bench_results, data):
    results = shutil.copytree(bench_results, tmp_path / "results")
    next(results.glob("*.scores.npz")).write_bytes(b"PK\x03\x04 not a zip archive")
    line = one_line_error(run_cli("report", str(results), "--data", str(data), "--out", str(tmp_path / "r.html"), check=False))
    assert ".scores.npz: corrupt scores file" in line


def small_image(path: Path, size=(40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 90, 90)).save(path)
    return path


COCO = {"images": [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [1, 2, 10, 5], "area": 50, "iscrowd": 0}],
        "categories": [{"id": 7, "name": "red cube"}]}  # fmt: skip


def test_coco_images_in_a_folder_linked_out_of_the_image_root_are_refused(tmp_path):
    root = tmp_path / "root"
    small_image(tmp_path / "outside" / "a.png")
    (root / "sub").parent.mkdir(parents=True)
    symlink_out(root, "sub", tmp_path / "outside")
    coco = {**COCO, "images": [{**COCO["images"][0], "file_name": "sub/a.png"}]}
    (tmp_path / "instances_x.json").write_text(json.dumps(coco))
    with pytest.raises(ToolkitError, match="leaves"):
        coco_source(tmp_path / "instances_x.json", root)


@pytest.mark.parametrize("folder", ["images", "labelTxt"])
def test_dota_folders_linked_out_of_the_root_are_refused(tmp_path, folder):
    root = tmp_path / "dota"
    small_image(root / "images" / "P0001.png")
    (root / "labelTxt").mkdir()
    (root / "labelTxt" / "P0001.txt").write_text("1 1 5 1 5 5 1 5 plane 0\n")
    symlink_out(root, folder, tmp_path / "outside")
    with pytest.raises(ToolkitError, match="leaves"):
        dota_source(root)


# 3. Run JSONs and COCO files are checked against a schema and bounded.


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r.update(split_hash=12345), "split_hash: expected string, got integer 12345"),
        (lambda r: r["metrics"]["overall"].update(mAP_replicates=[0.5, 0.5, 0.5]), "metrics.overall.mAP_replicates: 3 replicates"),
        (lambda r: r["metrics"]["buckets"]["small"].update(mAP_ci=[0.1]), "metrics.buckets.small.mAP_ci: expected null or a list of 2"),
        (lambda r: r["metrics"]["buckets"].update(small=[]), "metrics.buckets.small: expected object"),
        (lambda r: r["metrics"]["overall"]["per_class"]["red cube"].update(AP="high"), "per_class.red cube holds 'high'"),
        (lambda r: r["cost"].update(encode_threads="two"), "cost.encode_threads: expected integer"),
        (lambda r: r["metrics"].pop("bootstrap"), "metrics: missing keys bootstrap"),
    ],
)
def test_a_run_that_breaks_the_schema_is_one_line_naming_it(tmp_path, results, change, message):
    record = json.loads(run_json(results).read_text())
    change(record)
    run_json(results).write_text(json.dumps(record))
    line = one_line_error(run_cli("leaderboard", str(results), check=False))
    assert run_json(results).name in line and message in line, line


def test_a_run_nested_200k_deep_is_skipped_with_one_line(tmp_path, results):
    (results / "deep.json").write_text(DEEP)
    proc = run_cli("leaderboard", str(results))
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[0] == "skipping deep.json: run record nested deeper than 64 levels"


def test_coco_nested_200k_deep_is_one_line(tmp_path):
    (tmp_path / "instances_x.json").write_text(DEEP)
    proc = run_cli("bench", "--coco", str(tmp_path / "instances_x.json"), "--image-root", str(tmp_path), "--out",
                   str(tmp_path / "out"), "--model", "clip", *FAST, check=False)  # fmt: skip
    assert "instances_x.json: COCO instances file nested deeper than 64 levels" in one_line_error(proc)


def test_coco_files_larger_than_64_mib_are_read(tmp_path):
    """COCO train instances are about 450 MB: the COCO reader's limit is 1 GiB, not the 64 MiB of run files."""
    small_image(tmp_path / "a.png")
    path = tmp_path / "instances_x.json"
    path.write_text(json.dumps(COCO) + " " * (65 * 2**20))
    assert coco_source(path, tmp_path).classes == ("red cube",)


@pytest.mark.parametrize(
    "image, annotation, message",
    [
        ({"width": 0}, {}, "images[0]: width and height must lie in"),
        ({}, {"bbox": [1, 2, 1e400, 5]}, "annotations[0]: bbox and area must be finite"),
        ({}, {"bbox": [1, 2, 10**400, 5]}, "annotations[0]: bbox and area must be finite"),
        ({}, {"bbox": [1, 2, -3, 5]}, "the box's width and height >= 0"),
        ({}, {"iscrowd": "yes"}, "annotations[0].iscrowd: expected 0 or 1"),
    ],
)
def test_coco_values_the_benchmark_cannot_use_are_one_line(tmp_path, image, annotation, message):
    small_image(tmp_path / "a.png")
    coco = {**COCO, "images": [{**COCO["images"][0], **image}], "annotations": [{**COCO["annotations"][0], **annotation}]}
    (tmp_path / "instances_x.json").write_text(json.dumps(coco).replace("Infinity", "1e400"))
    with pytest.raises(ToolkitError, match=message.replace("[", r"\[").replace("]", r"\]")):
        coco_source(tmp_path / "instances_x.json", tmp_path)


# 4. Fuzzing every reader: a domain error or a valid object, never anything else.

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def mutated(draw, document):
    """`document` with one to three values replaced by arbitrary JSON or deleted, anywhere in it."""
    doc = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 3))):
        parent, key = None, None
        node = doc
        while isinstance(node, (dict, list)) and node and (parent is None or draw(st.integers(0, 3)) > 0):
            parent, key = node, draw(st.sampled_from(list(node) if isinstance(node, dict) else range(len(node))))
            node = node[key]
        if parent is None:
            return draw(JSON_VALUES)
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[key]
        else:
            parent[key] = draw(JSON_VALUES)
    return doc


RUN = records(make_run("clip", 1.0, 1))[0][0]
REFERENCE = records(make_run("cc-mean", 2.0, 2))[0][0]


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(document=mutated(RUN))
def test_fuzz_run_records(fuzz_dir, document):
    path = fuzz_dir / "run.json"
    path.write_text(json.dumps(document))
    try:
        record = load_run(path)
    except ToolkitError:
        return
    to_markdown(build_table([(record, "run.json"), (REFERENCE, "reference.json")]))  # a valid run is a usable one


def scores_bytes(arrays: dict | None = None) -> bytes:
    rng = np.random.default_rng(0)
    overall = (rng.random((3, 5)) < 0.4).astype(np.int8)
    base = {"scores": rng.random((3, 5)), "classes": ["a", "b", "c"], "images": [f"{i}.png" for i in range(5)],
            "bucket_names": ["small", "large"], "buckets": [[0, 0.1], [0.1, 1]], "overall": overall,
            "per_bucket": np.stack([overall, -overall]), "k": 2}  # fmt: skip
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"scores-{os.getpid()}.npz"
    scores_writer(**{**base, **(arrays or {})})(path)
    data = path.read_bytes()
    path.unlink()
    return data


VALID_SCORES = scores_bytes()


def rewrite_member(data: bytes, name: str, array) -> bytes:
    """The archive with member `name` replaced by `array` (None: removed)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            if info.filename != f"{name}.npy":
                dst.writestr(info, src.read(info))
        if array is not None:
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)
            dst.writestr(f"{name}.npy", member.getvalue())
    return out.getvalue()


ARRAYS = st.one_of(
    st.none(),
    st.lists(st.integers(-2, 2), max_size=6).map(np.array),
    st.lists(st.lists(st.floats(allow_nan=True), min_size=5, max_size=5), max_size=4).map(np.array),
    st.lists(st.text(max_size=3), max_size=5).map(np.array),
    st.integers(-3, 3).map(np.int64),
)
SCORES_FILES = st.one_of(
    st.tuples(st.sampled_from(["scores", "classes", "images", "bucket_names", "buckets", "labels_overall",
                               "labels_buckets", "k"]), ARRAYS).map(lambda c: rewrite_member(VALID_SCORES, *c)),  # fmt: skip
    st.tuples(st.integers(0, len(VALID_SCORES) - 1), st.integers(0, 255)).map(
        lambda c: VALID_SCORES[: c[0]] + bytes([c[1]]) + VALID_SCORES[c[0] + 1 :]),
    st.integers(0, len(VALID_SCORES)).map(lambda n: VALID_SCORES[:n]),
    st.binary(max_size=64),
)


@FUZZ
@given(data=SCORES_FILES)
def test_fuzz_scores_files(fuzz_dir, data):
    path = fuzz_dir / "run.scores.npz"
    path.write_bytes(data)
    try:
        z = load_scores(path)
    except ToolkitError:
        return
    assert isinstance(z, SavedScores)
    evaluate(z.scores, z.classes, z.labels_overall, z.bucket_names, z.labels_buckets, z.k, n_resamples=5)


@FUZZ
@given(document=mutated(COCO))
def test_fuzz_coco_instances(fuzz_dir, document):
    small_image(fuzz_dir / "a.png")
    path = fuzz_dir / "instances_x.json"
    path.write_text(json.dumps(document))
    try:
        source = coco_source(path, fuzz_dir)
    except ToolkitError:
        return
    assert isinstance(source, Source) and all(0 <= o.rel_scale < float("inf") for im in source.images for o in im.objects)


TOKENS = st.sampled_from(["1", "-3.5", "40", "1e400", "nan", "inf", "plane", "small-vehicle", "0", "2", "١", "x", "gsd:1"])
LINES = st.one_of(st.lists(TOKENS, max_size=11).map(" ".join), st.text(max_size=30))


@FUZZ
@given(lines=st.lists(LINES, max_size=5), raw=st.binary(max_size=8))
def test_fuzz_dota_labels(fuzz_dir, lines, raw):
    root = fuzz_dir / "dota"
    small_image(root / "images" / "P0001.png")
    (root / "labelTxt").mkdir(exist_ok=True)
    (root / "labelTxt" / "P0001.txt").write_bytes("\n".join(lines).encode("utf-8", "surrogatepass") + raw)
    try:
        source = dota_source(root)
    except ToolkitError:
        return
    assert isinstance(source, Source)


# The search index: a hostile index file is one line, and its image paths stay inside its root.


def _index_arrays(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def index_file(tiny_dataset, tmp_path_factory):
    from cli import main

    out = tmp_path_factory.mktemp("index") / "index.npz"
    assert main(["index", str(tiny_dataset / "images"), "--out", str(out), "--method", "clip", "--backbone", TINY_BACKBONE,
                 "--pretrained", "none", "--quiet"]) == 0  # fmt: skip
    return out


@pytest.mark.parametrize("change", ["path outside", "absolute path", "deep header", "header of a list", "vectors as text", "no counts"])
def test_a_hostile_index_file_is_one_line(index_file, tmp_path, capsys, change):
    from cli import main

    arrays = _index_arrays(index_file)
    header = json.loads(str(arrays["header"]))
    if change == "path outside":
        header["images"][0]["path"] = "../../../../etc/passwd"
    elif change == "absolute path":
        header["images"][0]["path"] = "/etc/passwd"
    elif change == "deep header":
        arrays["header"] = np.array("[" * 100_000 + "]" * 100_000)
    elif change == "header of a list":
        header = [header]
    elif change == "vectors as text":
        arrays["vectors"] = np.array(["a"] * 4)
    else:
        del arrays["counts"]
    if change not in ("deep header",):
        arrays["header"] = np.array(json.dumps(header))
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    assert main(["search", str(bad), "a red cube", "--sheet", str(tmp_path / "sheet.png")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and str(bad) in err[0], err
    assert not (tmp_path / "sheet.png").exists()
