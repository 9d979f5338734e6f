"""`render`, `validate` and `export` are as safe as render (issue #25): one lock, complete splits,
exports that follow their scenes, nothing read or written outside the dataset, bounded input, one-line
errors on crafted files and hostile disks, and readers that fuzzing cannot crash.

Oracles come from outside the code under test: file trees listed before and after, JSON parsed here,
the CLI's exit status and stderr lines.
"""

from __future__ import annotations

import copy as copying
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clevr_ds.dataset import DatasetError, finished_scenes, load_meta, load_vocabulary, read_scene
from clevr_ds.export import manifest, to_clevr, to_coco
from clevr_ds.schema import META, SCENE, problem
from clevr_ds.validate import validate
from conftest import ROOT, TINY_RENDER_ARGS, run_cli
from hostile_fs import file_in_the_way, full_disk, one_line_error, read_only_disk, symlink_out, tree
from tests.test_clevr_ds_integrity import SPLIT, edit_json, png_file, scene_file
FUZZ = settings(max_examples=200, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])  # fmt: skip
HOLD_LOCK = "import sys, time; from infra.lock import folder_lock\nwith folder_lock(sys.argv[1], 'render val'):\n    print('held', flush=True); time.sleep(600)"


def clevr_file(root: Path) -> Path:
    return root / f"CLEVR_{SPLIT}_scenes.json"


def content(root: Path) -> dict[str, bytes]:
    """`tree(root)` less the folder locks, which name their last holder."""
    return {name: data for name, data in tree(root).items() if Path(name).name != ".lock"}


def export(root: Path, *args: str) -> subprocess.CompletedProcess:
    return run_cli("export", str(root), *args, check=False)


@pytest.fixture
def copy(tiny_dataset, tmp_path) -> Path:
    root = tmp_path / "ds"
    shutil.copytree(tiny_dataset, root)
    return root


# 1. export holds the lock and refuses an incomplete split; render and validate keep the exports true


def test_export_during_a_render_is_refused_naming_the_render(copy):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(copy)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = content(copy)
        for fmt in ("clevr", "coco"):
            line = one_line_error(export(copy, "--format", fmt))
            assert f"pid {holder.pid} " in line and "render val" in line
        assert content(copy) == before
    finally:
        holder.kill()
        holder.wait()


def test_export_of_an_incomplete_split_is_refused_unless_allowed_and_says_how_many(copy):
    scene_file(copy, 2).unlink()  # a killed render: scene 2 unfinished, image 3 missing
    png_file(copy, 3).unlink()
    before = content(copy)
    for fmt in ("clevr", "coco"):
        line = one_line_error(export(copy, "--format", fmt))
        assert "incomplete" in line and "--allow-incomplete" in line and scene_file(copy, 2).name in line
    assert content(copy) == before
    proc = export(copy, "--format", "clevr", "--allow-incomplete")
    assert proc.returncode == 0 and "2 of 4 scenes" in proc.stderr
    assert [s["image_index"] for s in json.loads(clevr_file(copy).read_text())["scenes"]] == [0, 1]
    proc = export(copy, "--format", "coco", "--allow-incomplete")
    assert proc.returncode == 0 and "2 of 4 scenes" in proc.stderr
    assert [i["id"] for i in json.loads((copy / "annotations" / f"instances_{SPLIT}.json").read_text())["images"]] == [0, 1]


def test_validate_reports_exports_that_disagree_with_the_scenes_and_render_rewrites_them(tiny_dataset, copy):
    run_cli("export", str(copy), "--format", "clevr")
    assert validate(copy) == []
    kept = {p: p.read_bytes() for p in (scene_file(copy, 3), png_file(copy, 3))}
    for path in kept:
        path.unlink()
    run_cli("export", str(copy), "--format", "clevr", "--allow-incomplete")
    run_cli("export", str(copy), "--format", "coco", "--allow-incomplete")
    for path, data in kept.items():  # the split is whole again; its exports still hold 3 scenes
        path.write_bytes(data)
    problems = validate(copy)
    for name in (clevr_file(copy).name, f"instances_{SPLIT}.json", f"manifest_{SPLIT}.csv"):
        assert any(name in p for p in problems), (name, problems)
    assert any("3 scenes for the split's 4" in p for p in problems)
    scene_file(copy, 3).unlink()
    png_file(copy, 3).unlink()
    run_cli("render", "--out", str(copy), "--split", SPLIT, "-n", "4", *TINY_RENDER_ARGS)
    assert validate(copy) == []
    assert len(json.loads(clevr_file(copy).read_text())["scenes"]) == 4
    coco = f"annotations/instances_{SPLIT}.json"
    assert (copy / coco).read_bytes() == (tiny_dataset / coco).read_bytes()  # the manifest differs in render times


# 2. Nothing is read or written outside the dataset


@pytest.mark.parametrize("folder", ["annotations", "scenes", "meta", "images"])
def test_validate_refuses_a_symlinked_folder_leaving_the_root(copy, tmp_path, folder):
    symlink_out(copy, folder, tmp_path / "outside")
    problems = validate(copy)
    assert problems and all("leaves" in p for p in problems), problems


def test_export_and_render_write_nothing_through_a_symlink_leaving_the_root(copy, tmp_path):
    outside = symlink_out(copy, "annotations", tmp_path / "outside")
    clevr_file(copy).symlink_to(outside / "clevr.json")
    before = content(tmp_path)
    for fmt in ("coco", "clevr"):
        assert "leaves" in one_line_error(export(copy, "--format", fmt))
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "annotations").symlink_to(outside)
    assert "leaves" in one_line_error(run_cli("render", "--out", str(fresh), "--split", SPLIT, "-n", "1", *TINY_RENDER_ARGS, check=False))
    assert content(tmp_path) == before


# 3. Crafted inputs: one line each


def drop(key: str):
    return lambda record: record.__delitem__(key)


def _crafted():
    """(flags, change of the dataset, message, formats): crafted input that export must refuse in one line."""
    both = ("clevr", "coco")
    return [
        (["--split", "../../x"], None, "not a plain name", both),
        (["--split", "nosuch"], None, "no split 'nosuch'", both),
        ([], lambda root: edit_json(root / "meta" / f"{SPLIT}.json", lambda m: m.update(split="../x")), "meta of split", both),
        ([], lambda root: edit_json(scene_file(root, 1), lambda s: s.update(image_filename="../../x.png")), "not a plain name", both),
        ([], lambda root: edit_json(scene_file(root, 1), lambda s: drop("mask")(s["objects"][0])), "missing keys mask", both),
        ([], lambda root: edit_json(scene_file(root, 1), lambda s: s["objects"][0].update({"class": "gold cube"})), "gold cube", ("coco",)),
        ([], lambda root: edit_json(scene_file(root, 1), lambda s: s["relationships"].update(left=[])), "relationships", ("clevr",)),
        ([], lambda root: edit_json(root / "meta" / f"{SPLIT}.json", lambda m: m.update(num_images=10**12)), "num_images", both),
        ([], lambda root: edit_json(root / "meta" / f"{SPLIT}.json", lambda m: m["vocabulary"]["colors"].update(red=7)),
         "vocabulary.colors.red", both),
        ([], lambda root: edit_json(root / "meta" / f"{SPLIT}.json", lambda m: m["vocabulary"].update(materials={})),
         "vocabulary has no materials", ("coco",)),
    ]  # fmt: skip


@pytest.mark.parametrize("args, change, message, formats", _crafted())
def test_export_of_crafted_input_is_one_line(copy, args, change, message, formats):
    if change:
        change(copy)
    before = content(copy)
    for fmt in formats:
        assert message in one_line_error(export(copy, "--format", fmt, *args))
    assert content(copy) == before


@pytest.mark.parametrize(
    "change, message",
    [
        (drop("categories"), "missing keys categories"),
        (lambda c: c.update(images={}), "images: expected a list"),
        (lambda c: c["annotations"][0].update(bbox="0 0 1 1"), "annotations[0].bbox: expected a list of 4"),
        (lambda c: c["annotations"][0]["segmentation"].update(size=[10**9, 10**9]), "mask of annotation 1 is"),
        (lambda c: c["annotations"][0].update(category_id=999), "differ from its scene"),
        (lambda c: [c], "expected an object, got list"),
    ],
)
def test_validate_of_a_crafted_coco_file_is_one_problem_line(copy, change, message):
    edit_json(copy / "annotations" / f"instances_{SPLIT}.json", change)
    proc = run_cli("validate", str(copy), check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and len(lines) == 2 and message in lines[0], proc.stderr
    assert f"instances_{SPLIT}.json" in lines[0] and lines[1] == f"error: 1 problem(s) in {copy}"


def test_validate_of_a_bad_split_flag_is_one_line(copy):
    assert "not a plain name" in one_line_error(run_cli("validate", str(copy), "--split", "../../x", check=False))


# 4. Bounded input: depth and size


DEEP = "[" * 200_000 + "]" * 200_000


@pytest.mark.parametrize("which", ["scene", "meta"])
def test_json_nested_200k_deep_is_one_line_for_every_command(copy, which):
    path = scene_file(copy, 1) if which == "scene" else copy / "meta" / f"{SPLIT}.json"
    path.write_text(DEEP)
    assert any("nested deeper than 64 levels" in p and path.name in p for p in validate(copy))
    commands = [["export", str(copy), "--format", "coco"], ["render", "--out", str(copy), "--split", SPLIT, "--resume", "--quiet"]]
    for args in commands:
        line = one_line_error(run_cli(*args, check=False))
        assert "nested deeper than 64 levels" in line and path.name in line, args


def test_a_scene_json_over_the_size_limit_is_one_line(copy):
    path = scene_file(copy, 1)
    with open(path, "wb") as f:
        f.truncate(400 * 2**20)  # sparse: 400 MB that take no disk
    assert any("larger than the limit of 64 MiB" in p and path.name in p for p in validate(copy))
    for fmt in ("clevr", "coco"):
        assert "larger than the limit of 64 MiB" in one_line_error(export(copy, "--format", fmt))


def test_a_scale_too_small_to_sample_is_one_line_without_numpy_warnings(tmp_path):
    out = tmp_path / "ds"
    line = one_line_error(run_cli("render", "--out", str(out), "--scales", "1e-300-0.1", *TINY_RENDER_ARGS[:2], check=False))
    assert "1e-300-0.1" in line and not out.exists()


# 5. Hostile disks


def test_validate_reads_a_read_only_copy(tiny_dataset, tmp_path):
    with read_only_disk(tmp_path / "ro", tiny_dataset) as ro:
        proc = run_cli("validate", str(ro), check=False)
        assert proc.returncode == 0 and proc.stdout.startswith(f"{ro}: OK"), proc.stderr


@pytest.mark.parametrize("fmt", ["clevr", "coco"])
def test_export_on_a_read_only_disk_is_one_line(tiny_dataset, tmp_path, fmt):
    with read_only_disk(tmp_path / "ro", tiny_dataset) as ro:
        before = content(ro)
        assert "read-only file system" in one_line_error(export(ro, "--format", fmt))
        assert content(ro) == before


@pytest.mark.parametrize("fmt", ["clevr", "coco"])
def test_export_on_a_full_disk_is_one_line_naming_the_disk_and_leaves_nothing(tiny_dataset, tmp_path, fmt):
    with full_disk(tmp_path / "full", tiny_dataset, size_mib=8) as full:
        before = content(full)
        line = one_line_error(export(full, "--format", fmt))
        assert "no space left on device" in line and f"disk mounted at {tmp_path / 'full'}" in line
        assert content(full) == before


def test_export_below_a_file_is_one_line(tmp_path):
    root = file_in_the_way(tmp_path)
    before = content(tmp_path)
    assert str(root) in one_line_error(export(root, "--format", "coco"))
    assert content(tmp_path) == before


def test_render_on_a_full_disk_names_the_disk(tiny_dataset, tmp_path):
    with full_disk(tmp_path / "full", tiny_dataset, size_mib=8) as full:
        scene_file(full, 2).unlink()  # frees room for the meta and the job file, not for the image
        scene_file(full, 3).unlink()
        line = one_line_error(run_cli("render", "--out", str(full), "--split", SPLIT, "-n", "4", *TINY_RENDER_ARGS, check=False))
        assert f"no space left on device on the disk mounted at {tmp_path / 'full'}" in line
        assert not [p for p in full.rglob("*") if ".tmp-" in p.name]


# 6. Fuzzing the readers: a DatasetError or a valid object, never anything else

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=16,
)


def _spots(value, spots=None) -> list:
    """Every (container, key) in a JSON value."""
    spots = [] if spots is None else spots
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        spots.append((value, key))
        _spots(child, spots)
    return spots


@st.composite
def mutated(draw, original):
    """`original` with one to three values replaced by arbitrary JSON, or keys dropped."""
    value = copying.deepcopy(original)
    for _ in range(draw(st.integers(1, 3))):
        spots = _spots(value)
        if not spots:
            break
        container, key = draw(st.sampled_from(spots))
        if isinstance(container, dict) and draw(st.booleans()):
            del container[key]
        else:
            container[key] = draw(JSON)
    return value


def _fuzzed(original):
    return st.one_of(JSON, mutated(original))


@pytest.fixture(scope="module")
def fuzz_root(tiny_dataset, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fuzz") / "ds"
    shutil.copytree(tiny_dataset, root)
    return root


def _original(path: Path):
    return json.loads(path.read_text())


def _write(path: Path, value) -> None:
    path.write_text(json.dumps(value))


def _fuzz_reader(path: Path, read, valid) -> None:
    """Fuzz the file at `path`: `read()` must raise DatasetError or return what `valid` accepts."""
    original = _original(path)

    @FUZZ
    @given(_fuzzed(original))
    def check(value):
        _write(path, value)
        try:
            result = read()
        except DatasetError:
            return
        assert valid(result)

    try:
        check()
    finally:
        _write(path, original)


def test_fuzzed_scene_json_is_a_dataset_error_or_a_valid_scene(fuzz_root):
    path = scene_file(fuzz_root, 1)
    _fuzz_reader(path, lambda: read_scene(fuzz_root, SPLIT, path.name, SCENE, 4),
                 lambda scene: problem(scene, SCENE) is None and scene["image_index"] == 1)


def test_fuzzed_meta_is_a_dataset_error_or_a_valid_meta(fuzz_root):
    _fuzz_reader(fuzz_root / "meta" / f"{SPLIT}.json", lambda: load_meta(fuzz_root, SPLIT, META),
                 lambda meta: problem(meta, META) is None and meta["split"] == SPLIT and 1 <= meta["num_images"] <= 10**6)


@pytest.mark.parametrize("which", ["coco", "scene", "meta"])
def test_fuzzed_files_give_validate_problem_lines_never_an_exception(fuzz_root, which):
    path = {"coco": fuzz_root / "annotations" / f"instances_{SPLIT}.json", "scene": scene_file(fuzz_root, 1),
            "meta": fuzz_root / "meta" / f"{SPLIT}.json"}[which]  # fmt: skip
    original = _original(path)

    @settings(FUZZ, max_examples=100 if which == "coco" else 60)
    @given(_fuzzed(original))
    def check(value):
        _write(path, value)
        problems = validate(fuzz_root, [SPLIT])
        assert all(isinstance(p, str) and "\n" not in p for p in problems)

    try:
        check()
    finally:
        _write(path, original)


@pytest.mark.parametrize("which", ["scene", "meta"])
def test_fuzzed_files_give_export_a_dataset_error_or_its_exports(fuzz_root, which):
    path = scene_file(fuzz_root, 1) if which == "scene" else fuzz_root / "meta" / f"{SPLIT}.json"
    original = _original(path)

    @settings(FUZZ, max_examples=100)
    @given(mutated(original))
    def check(value):
        _write(path, value)
        try:
            scenes = finished_scenes(fuzz_root, SPLIT, SCENE)
            exports = to_clevr(scenes, SPLIT), to_coco(scenes, load_vocabulary(fuzz_root, SPLIT), SPLIT), manifest(scenes)
        except DatasetError:
            return
        assert len(exports[0]["scenes"]) == len(exports[1]["images"]) == len(exports[2]) == 4

    try:
        check()
    finally:
        _write(path, original)
