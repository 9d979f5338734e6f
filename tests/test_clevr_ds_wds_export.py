"""`export --format wds` (issue #29 item 2): WebDataset shards of fixed bytes that the webdataset library reads back
sample for sample, and `bench --wds` on them gives the folder's figures and scores, every method, with its images
read and decoded from the shards; member names are untrusted; bad input is one line and writes nothing.

Oracles: the webdataset library, the scene JSONs and PNG files read here, the native bench run, file trees listed
before and after, tar archives crafted here with the standard library.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from benchmark.methods import method_names
from benchmark.sources import clevr_ds_source, wds_source
from clevr_ds.dataset import DatasetError, split_hash
from clevr_ds.wds import shard_paths
from tests.benchmark_fixtures import make_checkpoint
from tests.hostile_fs import file_in_the_way
from tests.test_benchmark_sources import assert_same_runs, bench
from tests.test_clevr_ds_dota_export import files, one_line
from tests.test_clevr_ds_integrity import SPLIT, edit_json, png_file, run, scene_file

STEMS = [f"CLEVR-DS_{SPLIT}_{i:06d}" for i in range(4)]


def export(capsys, root: Path, *args) -> tuple[int, str, str]:
    return run(capsys, "export", root, "--format", "wds", "--split", SPLIT, *args)


def test_shards_hold_each_image_and_scene_in_order_and_webdataset_reads_them(capsys, tiny_copy):
    import webdataset

    code, out, err = export(capsys, tiny_copy, "--shard-size", "3")
    folder = tiny_copy / "wds" / SPLIT
    assert code == 0 and err == "" and out == f"{SPLIT}: 2 shard(s) (bench --wds '{folder}/{SPLIT}-{{000000..000001}}.tar')\n"
    assert sorted(p.name for p in folder.iterdir()) == [".lock", f"{SPLIT}-000000.tar", f"{SPLIT}-000001.tar", f"{SPLIT}-meta.json"]
    assert json.loads((folder / f"{SPLIT}-meta.json").read_text()) == json.loads((tiny_copy / "meta" / f"{SPLIT}.json").read_text())
    with tarfile.open(folder / f"{SPLIT}-000000.tar") as shard:
        members = shard.getmembers()
    assert [m.name for m in members] == [f"{stem}.{ext}" for stem in STEMS[:3] for ext in ("png", "json")]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode, m.type) for m in members} == {(1795910400, 0, 0, "", "", 0o644, tarfile.REGTYPE)}
    samples = list(webdataset.WebDataset(f"{folder}/{SPLIT}-{{000000..000001}}.tar", shardshuffle=False))
    assert [s["__key__"] for s in samples] == STEMS
    for i, sample in enumerate(samples):
        assert sorted(k for k in sample if not k.startswith("__")) == ["json", "png"]
        assert sample["png"] == png_file(tiny_copy, i).read_bytes()
        assert json.loads(sample["json"]) == json.loads(scene_file(tiny_copy, i).read_text())
        assert sample["json"] == scene_file(tiny_copy, i).read_bytes()  # the renderer's own bytes


def test_shard_bytes_are_deterministic(capsys, tiny_copy, tmp_path):
    assert export(capsys, tiny_copy)[0] == 0
    first = files(tiny_copy / "wds" / SPLIT)
    assert list(first) == [f"{SPLIT}-000000.tar", f"{SPLIT}-meta.json"]
    assert export(capsys, tiny_copy)[0] == 0  # again, into the same folder
    assert files(tiny_copy / "wds" / SPLIT) == first
    elsewhere = tmp_path / "ds2"
    shutil.copytree(tiny_copy, elsewhere, ignore=shutil.ignore_patterns("wds"))
    for i in range(4):  # the timings of another render of the same scenes: other scene bytes, the same content
        edit_json(scene_file(elsewhere, i), lambda s: s["render"].update(render_s=99.0))
    assert export(capsys, elsewhere, "--out", tmp_path / "shards")[0] == 0
    assert files(tmp_path / "shards")[f"{SPLIT}-meta.json"] == first[f"{SPLIT}-meta.json"]
    assert wds_source(str(tmp_path / "shards")).content_hash == split_hash(tiny_copy, SPLIT)


def test_the_shard_reader_gives_the_folders_source(capsys, tiny_copy):
    assert export(capsys, tiny_copy, "--shard-size", "2")[0] == 0
    folder = tiny_copy / "wds" / SPLIT
    native = clevr_ds_source(tiny_copy, SPLIT)
    for spec in (str(folder), f"{folder}/{SPLIT}-{{000000..000001}}.tar", f"{folder}/{SPLIT}-000000.tar::{folder}/{SPLIT}-000001.tar"):
        shards = wds_source(spec)
        assert (shards.dataset, shards.split, shards.classes, shards.content_hash, shards.default_buckets, shards.n_images_expected,
                shards.prompts) == (native.dataset, native.split, native.classes, native.content_hash, native.default_buckets,
                                    native.n_images_expected, native.prompts)  # fmt: skip
        assert [(im.name, im.width, im.height, im.objects) for im in shards.images] == \
            [(im.name, im.width, im.height, im.objects) for im in native.images]  # fmt: skip
        assert [im.path.read_bytes() for im in shards.images] == [im.path.read_bytes() for im in native.images]
    with pytest.raises(DatasetError, match=r"is incomplete: missing CLEVR-DS_val_000002.png, CLEVR-DS_val_000003.png"):
        wds_source(f"{folder}/{SPLIT}-000000.tar")
    assert [im.name for im in wds_source(f"{folder}/{SPLIT}-000000.tar", allow_incomplete=True).images] == [f"{s}.png" for s in STEMS[:2]]


def test_bench_on_the_shards_gives_the_folders_figures(capsys, tiny_dataset, tmp_path):
    """Every method, every bucket: same metrics, labels, saved scores and split hash; features extracted from the
    shards' bytes (no shared cache), so the images go through bench's decoding from the archive."""
    root = tmp_path / "ds"
    shutil.copytree(tiny_dataset, root)
    assert export(capsys, root, "--shard-size", "3")[0] == 0
    common = ["--checkpoint", make_checkpoint(tmp_path / "fusion.pt", k=2), "--model", "all"]
    native = bench(capsys, tmp_path / "native", "--data", root, "--split", SPLIT, "--cache-dir", tmp_path / "cache", *common)
    shards = bench(capsys, tmp_path / "wds", "--wds", f"{root}/wds/{SPLIT}/{SPLIT}-{{000000..000001}}.tar",
                   "--cache-dir", tmp_path / "wds-cache", *common)  # fmt: skip
    assert len(native) == len(method_names()) and native["clip"]["metrics"]["overall"]["n_queries"] > 0
    assert_same_runs(native, shards)
    assert {(r["dataset"], r["split"], r["split_hash"]) for r in shards.values()} == {("CLEVR-DS", SPLIT, split_hash(root, SPLIT))}
    assert sorted(p.name for p in (tmp_path / "wds-cache").rglob("*") if p.is_file()) == \
        sorted(p.name for p in (tmp_path / "cache").rglob("*") if p.is_file())  # fmt: skip
    code, _, err = run(capsys, "report", tmp_path / "wds", "--wds", f"{root}/wds/{SPLIT}", "--out", tmp_path / "report.html")
    assert code == 0 and (tmp_path / "report.html").read_text().count("data:image/jpeg;base64,") >= 4, err  # galleries from the shards


def shard(path: Path, members: list[tuple[str, bytes]], kind: bytes = tarfile.REGTYPE, fmt: int = tarfile.PAX_FORMAT) -> Path:
    """A tar file of `members` written with the standard library (any names, as a hostile writer would)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=fmt) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.type, info.size = kind, len(data) if kind == tarfile.REGTYPE else 0
            if kind == tarfile.SYMTYPE:
                info.linkname = "/etc/passwd"
            archive.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return path


def sample(tiny_copy: Path, i: int, name: str | None = None) -> list[tuple[str, bytes]]:
    stem = name or STEMS[i]
    return [(f"{stem}.png", png_file(tiny_copy, i).read_bytes()), (f"{stem}.json", scene_file(tiny_copy, i).read_bytes())]


@pytest.mark.parametrize(
    "members, kind, message",
    [
        (lambda c: [("../" + n, d) for n, d in sample(c, 0)], tarfile.REGTYPE, "member name '../CLEVR-DS_val_000000.png' is not a plain name"),
        (lambda c: [("/tmp/" + n, d) for n, d in sample(c, 0)], tarfile.REGTYPE, "is not a plain name"),
        (lambda c: [("x" * 300 + ".png", b"")], tarfile.REGTYPE, "is not a plain name"),  # a PAX long name
        (lambda c: [(".hidden.png", b"")], tarfile.REGTYPE, "is not a plain name"),
        (lambda c: [("CLEVR-DS_val_000000.png", b"")], tarfile.SYMTYPE, "member 'CLEVR-DS_val_000000.png' is not a regular file"),
        (lambda c: [("sub", b"")], tarfile.DIRTYPE, "member 'sub' is not a regular file"),
        (lambda c: sample(c, 0) + sample(c, 0)[:1], tarfile.REGTYPE, "member 'CLEVR-DS_val_000000.png' appears twice"),
        (lambda c: sample(c, 0)[:1], tarfile.REGTYPE, "sample 'CLEVR-DS_val_000000' holds png; expected its png and json"),
        (lambda c: sample(c, 0) + [("CLEVR-DS_val_000000.txt", b"hi")], tarfile.REGTYPE, "holds json, png, txt"),
        (lambda c: sample(c, 1, STEMS[0]), tarfile.REGTYPE, "image_index 1 and image_filename 'CLEVR-DS_val_000001.png' do not match"),
        (lambda c: [(f"{STEMS[0]}.png", b""), (f"{STEMS[0]}.json", b"[" * 100 + b"]" * 100)], tarfile.REGTYPE, "nested deeper than"),
        (lambda c: [(f"{STEMS[0]}.png", b""), (f"{STEMS[0]}.json", b"{\"image_index\": 0}")], tarfile.REGTYPE, "missing keys"),
        (lambda c: [(f"{STEMS[0]}.png", b""), (f"{STEMS[0]}.json", b"\xff")], tarfile.REGTYPE, "cannot read"),
    ],
)  # fmt: skip
def test_hostile_shards_are_one_line_and_nothing_escapes(capsys, tiny_copy, tmp_path, members, kind, message):
    folder = tmp_path / "shards"
    folder.mkdir()
    shutil.copy(tiny_copy / "meta" / f"{SPLIT}.json", folder / f"{SPLIT}-meta.json")
    shard(folder / f"{SPLIT}-000000.tar", members(tiny_copy), kind)
    before = files(tmp_path)
    code, out, err = run(capsys, "bench", "--wds", folder, "--out", tmp_path / "results", "--model", "clip", "--allow-incomplete")
    assert message in one_line(code, err) and out == ""
    assert files(tmp_path) == before


def test_two_shards_with_one_sample_and_cut_or_foreign_archives_are_refused(tiny_copy, tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    shutil.copy(tiny_copy / "meta" / f"{SPLIT}.json", folder / f"{SPLIT}-meta.json")
    shard(folder / f"{SPLIT}-000000.tar", sample(tiny_copy, 0))
    shutil.copy(folder / f"{SPLIT}-000000.tar", folder / f"{SPLIT}-000001.tar")
    with pytest.raises(DatasetError, match="sample 0 appears twice in the shards"):
        wds_source(str(folder), allow_incomplete=True)
    data = (folder / f"{SPLIT}-000000.tar").read_bytes()
    (folder / f"{SPLIT}-000001.tar").write_bytes(data[:1000])  # cut inside the first member
    with pytest.raises(DatasetError, match="val-000001.tar"):
        wds_source(str(folder), allow_incomplete=True)
    (folder / f"{SPLIT}-000001.tar").write_bytes(b"not a tar file at all" * 100)
    with pytest.raises(DatasetError, match="cannot read archive .*val-000001.tar"):
        wds_source(str(folder), allow_incomplete=True)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("{folder}/val-{{000000..000003}}.tar", "no shard {folder}/val-000001.tar (and 2 more)"),
        ("{folder}/val-000000.tar::{folder}/test-000000.tar", "shards named <split>-NNNNNN.tar of one split in one folder"),
        ("{folder}/val-{{000003..000000}}.tar", "range {{000003..000000}} must count up"),
        ("{folder}/val-{{0..99999999}}.tar", "to at most 1000000 names"),
        ("{folder}/empty", "no shards (*.tar) in the folder"),
        ("{folder}/nometa/val-000000.tar", "missing JSON file {folder}/nometa/val-meta.json"),
    ],
)
def test_shard_sets_that_do_not_fit_are_one_line(tiny_copy, tmp_path, spec, message):
    folder = tmp_path / "shards"
    (folder / "empty").mkdir(parents=True)
    shutil.copy(tiny_copy / "meta" / f"{SPLIT}.json", folder / f"{SPLIT}-meta.json")
    shard(folder / f"{SPLIT}-000000.tar", sample(tiny_copy, 0))
    shard(folder / "nometa" / f"{SPLIT}-000000.tar", sample(tiny_copy, 0))
    with pytest.raises(DatasetError) as error:
        wds_source(spec.format(folder=folder))
    assert message.format(folder=folder) in str(error.value)


def test_patterns_expand_as_webdataset_does():
    from webdataset.shardlists import expand_urls

    for spec in ("a/val-{000000..000011}.tar", "a/v-{0..12}.tar", "a/v-{8..10}-{01..02}.tar", "a/x.tar::b/y-{1..3}.tar"):
        assert [str(p) for p in shard_paths(spec)] == expand_urls(spec)


def test_export_refusals_are_one_line_and_write_nothing(capsys, tiny_copy, tmp_path):
    before = files(tiny_copy.parent)
    assert "--shard-size goes with --format wds" in one_line(*run(capsys, "export", tiny_copy, "--format", "hf", "--shard-size", "2")[::2])
    assert "--out goes with --format dota and one split, wds and one split, or hf" in \
        one_line(*run(capsys, "export", tiny_copy, "--format", "croissant", "--out", tmp_path / "x")[::2])  # fmt: skip
    assert "Invalid value for '--shard-size'" in one_line(*export(capsys, tiny_copy, "--shard-size", "0")[::2])
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "train-000000.tar").write_bytes(b"someone else's shard")
    line = one_line(*export(capsys, tiny_copy, "--out", foreign)[::2])
    assert f"{foreign} holds files that are not of split 'val' (train-000000.tar); export into an empty folder" in line
    assert str(file_in_the_way(tmp_path).parent) in one_line(*export(capsys, tiny_copy, "--out", file_in_the_way(tmp_path))[::2])
    edit_json(scene_file(tiny_copy, 0), lambda s: s["objects"][0].update(mask="not a mask"))
    assert "objects[0].mask: expected an object" in one_line(*export(capsys, tiny_copy)[::2])
    del before[f"ds/scenes/{SPLIT}/{STEMS[0]}.json"]
    after = files(tiny_copy.parent)
    del after[f"ds/scenes/{SPLIT}/{STEMS[0]}.json"]
    assert after == {**before, "mine/train-000000.tar": b"someone else's shard", "a-file": b"not a folder\n"}
