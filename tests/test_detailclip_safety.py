"""Issue #25 for DetailCLIP's commands (train, encode, train-backbone, zero-shot), its feature cache
and checkpoints: a swapped cache entry is refused, identical runs write identical files, a hostile
disk is one line naming the file, and the file readers answer fuzzed input with a domain error or a
valid object, never anything else."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from cli import main
from detailclip.backbones import load_backbone
from detailclip.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint, torch_bytes
from detailclip.feature_cache import FeatureCache
from detailclip.features import PatchFeatures, extract_features
from detailclip.fusion import build_fusion
from detailclip.patch_encoder import CutOptions
from detailclip.recipe import LossConfig, TrainConfig
from detailclip.training.fusion_trainer import STATE_FORMAT, Trainer
from detailclip.training.state import resume_from, save_state
from infra.errors import ToolkitError
from infra.lock import LOCK_NAME
from tests.hostile_fs import file_in_the_way, full_disk, one_line_error, read_only_disk, tree

TINY = "tiny-clip-vit-p8-32"
TINY_TRAIN = ["--backbone", TINY, "--pretrained", "none", "--size", "tiny", "--cover-k", "3", "--templates", "short",
              "--batch-size", "2", "--epochs", "2", "--checkpoint-every", "1", "--val-fraction", "0.34", "--quiet"]
TINY_BACKBONE = ["--split", "val", "--val-split", "val", "--backbone", TINY, "--steps", "2", "--batch-size", "4",
                 "--images-per-batch", "2", "--eval-every", "1", "--checkpoint-every", "1", "--quiet"]
FUZZ = settings(max_examples=100, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def backbone():
    return load_backbone(TINY, "none", device="cpu", seed=3)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """images/ (three small PNGs), classes.txt and a fusion checkpoint fusion.pt (cc, k = 3)."""
    root = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    (root / "images").mkdir()
    for i, (h, w) in enumerate([(40, 56), (40, 56), (33, 47)]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / "images" / f"img{i}.png")
    (root / "classes.txt").write_text("red cube\nblue sphere\n")
    torch.manual_seed(0)
    save_checkpoint(root / "fusion.pt", build_fusion("tiny", 32), CHECKPOINT_CONFIG)
    return root


CHECKPOINT_CONFIG = {"backbone": TINY, "pretrained": "none", "backbone_seed": 3, "image_size": None, "scheme": "cc",
                     "k": 3, "antialias": True, "untrained": True}


def images_of(inputs: Path) -> list[Path]:
    return sorted((inputs / "images").glob("*.png"))


def cli_error(capsys, *args: str) -> str:
    """The one-line error of `cli.py ARGS` run in this process (asserts: non-zero exit, one line
    besides warnings such as a random backbone's)."""
    capsys.readouterr()
    code = main([str(a) for a in args])
    err = "".join(line for line in capsys.readouterr().err.splitlines(True) if not line.startswith("warning: "))
    return one_line_error(subprocess.CompletedProcess(args, code, "", err))


def no_temporaries(root: Path) -> None:
    assert not [name for name in tree(root) if ".tmp-" in name], tree(root).keys()


# 1. A swapped cache entry whose header was rewritten to name this one


def _extract(backbone, paths, cache=None):
    return extract_features(backbone, paths, scheme="cc", k=3, cache_dir=cache, batch_size=1, progress=False)


def _entry(cache: Path, image: Path, backbone) -> Path:
    folder = FeatureCache(cache, backbone, CutOptions(k=3)).folder
    return folder / f"{hashlib.sha256(image.read_bytes()).hexdigest()}.feat"


def _put(source: Path, target: Path, **header_changes) -> None:
    """Copy the entry `source` onto `target` with its header's fields changed."""
    head, _, payload = source.read_bytes().partition(b"\n")
    target.write_bytes(json.dumps({**json.loads(head), **header_changes}).encode() + b"\n" + payload)


def _another_image(backbone, images, cache, target):
    other = _entry(cache, images[2], backbone)
    _put(other, target, entry=target.stem)


def _another_seed(backbone, images, cache, target):
    seed_4 = load_backbone(TINY, "none", device="cpu", seed=4)
    _extract(seed_4, images[:1], cache)
    _put(_entry(cache, images[0], seed_4), target, key=target.parent.name.rsplit("-", 1)[1])


def _format_2(backbone, images, cache, target):
    """An entry as format 2 wrote it: the checksum covered only the levels and features."""
    head, _, payload = target.read_bytes().partition(b"\n")
    header = json.loads(head)
    checksum = hashlib.sha256(np.array(header["levels"], dtype="<i2").tobytes() + payload).hexdigest()
    _put(target, target, format=2, sha256=checksum)


@pytest.mark.parametrize("swap", [_another_image, _another_seed, _format_2])
def test_a_swapped_cache_entry_is_extracted_again(backbone, inputs, tmp_path, capsys, swap):
    images, cache = images_of(inputs), tmp_path / "cache"
    fresh = _extract(backbone, images)
    _extract(backbone, images, cache)
    target = _entry(cache, images[0], backbone)
    swap(backbone, images, cache, target)
    capsys.readouterr()
    again = _extract(backbone, images, cache)
    for a, b in zip(again, fresh):
        assert np.array_equal(a.data, b.data) and np.array_equal(a.level_ids, b.level_ids)
    warning = capsys.readouterr().err.strip()
    assert warning.startswith("warning:") and str(target) in warning and len(warning.splitlines()) == 1


# 2. Identical runs write identical files


def _train(inputs: Path, out: Path, *extra: str) -> None:
    assert main(["train", "--data", str(inputs / "images"), "--classes", str(inputs / "classes.txt"), *TINY_TRAIN,
                 "--out", str(out), *extra]) == 0


def test_identical_train_runs_write_identical_checkpoints_and_states(inputs, tmp_path):
    for run in ("a", "b"):
        _train(inputs, tmp_path / run / "m.pt")
    for name in ("m.pt", "m.pt.state.pt"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    logs = [pd.read_csv(tmp_path / run / "m.pt.log.csv") for run in ("a", "b")]
    assert list(logs[0].columns)[-1] == "seconds" and len(logs[0]) == 2
    pd.testing.assert_frame_equal(logs[0].drop(columns="seconds"), logs[1].drop(columns="seconds"))


class Killed(Exception):
    pass


def test_a_resumed_run_keeps_the_logged_seconds(inputs, tmp_path, monkeypatch):
    out, train_epoch = tmp_path / "m.pt", Trainer.train_epoch

    def killed_in_epoch_2(self, progress):
        if self.epoch == 1:
            raise Killed
        return train_epoch(self, progress)

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "train_epoch", killed_in_epoch_2)
        with pytest.raises(Killed):
            _train(inputs, out)
    first = pd.read_csv(tmp_path / "m.pt.log.csv")["seconds"].tolist()
    _train(inputs, out, "--resume")
    seconds = pd.read_csv(tmp_path / "m.pt.log.csv")["seconds"].tolist()
    assert len(seconds) == 2 and seconds[0] == first[0] and seconds[1] >= 0


def test_identical_backbone_training_runs_write_identical_files(tiny_dataset, tmp_path):
    outs = [tmp_path / run / "bb.safetensors" for run in ("a", "b")]
    for out in outs:
        assert main(["train-backbone", "--data", str(tiny_dataset), "--out", str(out), *TINY_BACKBONE]) == 0
    for suffix in ("", ".state.pt"):
        assert outs[0].with_name(outs[0].name + suffix).read_bytes() == outs[1].with_name(outs[1].name + suffix).read_bytes()
    timings = ("train_seconds", "wall_seconds_this_call")
    sidecars = [{k: v for k, v in json.loads(out.with_suffix(".json").read_text()).items() if k not in timings}
                for out in outs]
    assert sidecars[0] == sidecars[1]


# 3. Hostile disks: one line naming the file and the reason, nothing half-written


REASONS = {"read-only": "read-only file system", "full": "no space left on device", "below a file": "not a directory"}


def _hostile(kind: str, tmp_path: Path):
    """A context giving a folder of the kind (the disk's mount point, or a path below a file)."""
    if kind == "read-only":
        return read_only_disk(tmp_path / "disk")
    if kind == "full":
        return full_disk(tmp_path / "disk")
    return contextlib.nullcontext(file_in_the_way(tmp_path))


def _check(line: str, named: Path, kind: str, where: Path) -> None:
    assert line.startswith("error: ") and str(named) in line and REASONS[kind] in line, line
    if kind != "below a file":
        no_temporaries(where)
        left = [name for name in tree(where) if not name.startswith(".filler") and not name.endswith(LOCK_NAME)]
        assert not left, tree(where).keys()  # nothing but the output's lock file


@pytest.mark.parametrize("kind", REASONS)
def test_encode_on_a_hostile_disk(inputs, tmp_path, capsys, kind):
    with _hostile(kind, tmp_path) as where:
        out = where / "vectors.npz"
        line = cli_error(capsys, "encode", "--checkpoint", inputs / "fusion.pt", "--images", inputs / "images",
                         "--cache-dir", "none", "--out", out, "--quiet")
        _check(line, out, kind, where)


@pytest.mark.parametrize("kind", ["read-only", "full"])
def test_encode_with_its_cache_on_a_hostile_disk(inputs, tmp_path, capsys, kind):
    with _hostile(kind, tmp_path) as where:
        line = cli_error(capsys, "encode", "--checkpoint", inputs / "fusion.pt", "--images", inputs / "images",
                         "--cache-dir", where / "cache", "--out", tmp_path / "vectors.npz", "--quiet")
        _check(line, where / "cache", kind, where)
    assert not (tmp_path / "vectors.npz").exists()


@pytest.mark.parametrize("kind", REASONS)
def test_train_on_a_hostile_disk(inputs, tmp_path, capsys, kind):
    with _hostile(kind, tmp_path) as where:
        out = where / "m.pt"
        line = cli_error(capsys, "train", "--data", inputs / "images", "--classes", inputs / "classes.txt", *TINY_TRAIN,
                         "--cache-dir", tmp_path / "cache", "--out", out)
        _check(line, out, kind, where)


@pytest.mark.parametrize("kind", REASONS)
def test_train_backbone_on_a_hostile_disk(tiny_dataset, tmp_path, capsys, kind):
    with _hostile(kind, tmp_path) as where:
        out = where / "bb.safetensors"
        line = cli_error(capsys, "train-backbone", "--data", tiny_dataset, "--out", out, *TINY_BACKBONE)
        _check(line, out, kind, where)


@pytest.mark.parametrize("kind", REASONS)
def test_zero_shot_on_a_hostile_disk(tiny_dataset, tmp_path, capsys, kind):
    with _hostile(kind, tmp_path) as where:
        out = where / "zs.json"
        line = cli_error(capsys, "zero-shot", "--data", tiny_dataset, "--split", "val", "--backbone", TINY,
                         "--pretrained", "none", "--factor", "2", "--out", out, "--quiet")
        _check(line, out, kind, where)


@pytest.mark.parametrize("write", [lambda path: save_checkpoint(path, build_fusion("tiny", 32), {}),
                                   lambda path: save_state(path, {"format": STATE_FORMAT, "x": torch.zeros(1000)})])
def test_checkpoints_and_states_on_a_full_disk_raise_an_os_error_naming_the_file(tmp_path, write):
    with full_disk(tmp_path / "disk") as where:
        with pytest.raises(OSError) as error:  # torch.save into the file said "PytorchStreamWriter failed writing file"
            write(where / "x.pt")
        assert error.value.filename == str(where / "x.pt")
        assert not [name for name in tree(where) if not name.startswith(".filler")]


# 3b. Checkpoint configs come from files: a wrong type or size is one CheckpointError line


def _with(config: dict, path: str, value) -> dict:
    """`config` with the field at `path` ("k", "fusion.dim") set to `value` (_REMOVE: removed)."""
    head, _, rest = path.partition(".")
    changed = dict(config)
    if rest:
        changed[head] = _with(config[head], rest, value)
    elif value is _REMOVE:
        del changed[head]
    else:
        changed[head] = value
    return changed


_REMOVE = object()
BAD_CONFIGS = [("k", "3"), ("k", 10**6), ("scheme", 5), ("scheme", "objects"), ("backbone", None),
               ("backbone_seed", 1.5), ("image_size", "32"), ("antialias", "yes"), ("fusion.dim", "32"),
               ("fusion.dim", 48), ("fusion.norm_first", "no"), ("fusion.heads", 0), ("fusion.encoder_layers", 10**9),
               ("fusion.mlp_ratio", float("nan")), ("fusion.size", "huge"), ("fusion.dropout", [0.1]),
               ("image_size", 10**6)]
MISSING = ["k", "scheme", "backbone", "fusion"]


def _payload(model: torch.nn.Module, config: dict) -> dict:
    return {"format": "detailclip-fusion/1", "config": config,
            "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()}}


@pytest.mark.parametrize("field, value", [*BAD_CONFIGS, *((name, _REMOVE) for name in MISSING)])
def test_a_checkpoint_config_of_a_wrong_type_is_one_line(inputs, tmp_path, capsys, field, value):
    torch.manual_seed(0)
    model = build_fusion("tiny", 32)
    config = _with({**CHECKPOINT_CONFIG, "fusion": dict(model.config)}, field, value)
    path = tmp_path / "bad.pt"
    path.write_bytes(torch_bytes(_payload(model, config)))
    line = cli_error(capsys, "encode", "--checkpoint", path, "--images", inputs / "images", "--cache-dir", "none",
                     "--out", tmp_path / "v.npz", "--quiet")
    assert str(path) in line and "checkpoint" in line, line
    assert not (tmp_path / "v.npz").exists()


@pytest.mark.parametrize("field, value", [("k", 10**6), ("scheme", "objects"), ("image_size", 10**6)])
def test_bench_and_index_refuse_a_checkpoint_that_cannot_say_how_to_encode(inputs, tiny_dataset, tmp_path, capsys, field,
                                                                            value):  # fmt: skip
    torch.manual_seed(0)
    model = build_fusion("tiny", 32)
    path = tmp_path / "bad.pt"
    path.write_bytes(torch_bytes(_payload(model, _with({**CHECKPOINT_CONFIG, "fusion": dict(model.config)}, field, value))))
    for argv in (["bench", "--data", tiny_dataset, "--split", "val", "--model", "detailclip", "--checkpoint", path,
                  "--out", tmp_path / "results", "--quiet"],
                 ["index", inputs / "images", "--checkpoint", path, "--out", tmp_path / "i.npz", "--quiet"]):  # fmt: skip
        line = cli_error(capsys, *argv)
        assert str(path) in line and field in line, line
    assert not (tmp_path / "results").exists() and not (tmp_path / "i.npz").exists()


# 4. Fuzzing the file readers: a domain error (or a cache miss) or a valid object, never anything else


def _mutated(data: bytes, draw) -> bytes:
    """`data` with a few bytes flipped, a piece cut out or inserted, or cut short."""
    kind = draw(st.sampled_from(["flip", "cut", "insert", "truncate"]))
    at = draw(st.integers(0, max(len(data) - 1, 0)))
    if kind == "flip":
        count = draw(st.integers(1, 8))
        return data[:at] + bytes(b ^ 0xFF for b in data[at:at + count]) + data[at + count:]
    if kind == "cut":
        return data[:at] + data[at + draw(st.integers(1, 64)):]
    if kind == "insert":
        return data[:at] + draw(st.binary(min_size=1, max_size=64)) + data[at:]
    return data[:at]


@st.composite
def damaged(draw, valid: bytes) -> bytes:
    """Random bytes, or a valid file mutated."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=2048))
    return _mutated(valid, draw)


@st.composite
def damaged_torch_file(draw, payload: dict) -> bytes:
    """Random or mutated bytes of torch.save(payload), or an archive whose pickle is mutated (valid zip)."""
    valid = torch_bytes(payload)
    if draw(st.booleans()):
        return draw(damaged(valid))
    source, buffer = zipfile.ZipFile(io.BytesIO(valid)), io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as target:
        for name in source.namelist():
            data = source.read(name)
            target.writestr(name, _mutated(data, draw) if name.endswith("data.pkl") else data)
    return buffer.getvalue()


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                           max_leaves=6)


@pytest.fixture(scope="module")
def cache_entry(backbone, inputs, tmp_path_factory):
    """(the cache, an entry name, its valid file's bytes, its features, its levels)."""
    cache = FeatureCache(tmp_path_factory.mktemp("cache"), backbone, CutOptions(k=3))
    features = np.random.default_rng(0).standard_normal((5, backbone.embed_dim)).astype(np.float16)
    levels = np.array([0, 1, 1, 2, 2], dtype=np.int16)
    cache.store("entry", features, levels)
    return cache, "entry", cache.path("entry").read_bytes(), features, levels


def test_fuzzed_cache_entries_are_misses_or_the_stored_entry(cache_entry):
    cache, entry, valid, features, levels = cache_entry

    @FUZZ
    @given(st.data())
    def check(data):
        cache.path(entry).write_bytes(data.draw(damaged(valid)))
        loaded = cache.load(entry)  # a bad entry is a miss, reported on stderr
        assert loaded is None or (np.array_equal(loaded[0], features) and np.array_equal(loaded[1], levels))

    check()


@pytest.fixture(scope="module")
def fusion_payload() -> dict:
    torch.manual_seed(0)
    model = build_fusion("tiny", 32)
    return _payload(model, {**CHECKPOINT_CONFIG, "fusion": dict(model.config)})


def _fusion_config_changes():
    """A config field (run or fusion) and a value for it."""
    names = [*CHECKPOINT_CONFIG, "fusion", *(f"fusion.{k}" for k in build_fusion("tiny", 32).config)]
    return st.tuples(st.sampled_from(names), JSON_VALUES | st.just(_REMOVE))


def test_fuzzed_checkpoints_are_checkpoint_errors_or_models(fusion_payload, tmp_path):
    path = tmp_path / "c.pt"

    @FUZZ
    @given(st.data())
    def check(data):
        if data.draw(st.booleans()):
            path.write_bytes(data.draw(damaged_torch_file(fusion_payload)))
        else:
            field, value = data.draw(_fusion_config_changes())
            path.write_bytes(torch_bytes({**fusion_payload, "config": _with(fusion_payload["config"], field, value)}))
        for read in (read_checkpoint, lambda p: load_checkpoint(p, "cpu")):
            try:
                result = read(path)
            except CheckpointError as e:
                assert str(path) in str(e) and len(str(e).splitlines()) == 1
                continue
            assert isinstance(result, dict) or isinstance(result[0], torch.nn.Module)

    check()


def _trainer() -> Trainer:
    """A fusion trainer on four random images of five patches (dim 32), one query."""
    rng = np.random.default_rng(0)
    items = [PatchFeatures(f"{i}.png", str(i), rng.standard_normal((5, 32)).astype(np.float16),
                           np.array([0, 1, 1, 2, 2])) for i in range(4)]
    torch.manual_seed(0)
    config = TrainConfig(epochs=2, batch_size=2, loss=LossConfig(teacher_temperature=0, list_depth=2))
    return Trainer(build_fusion("tiny", 32), items, items[:2], torch.nn.functional.normalize(torch.randn(1, 32), dim=-1),
                   config, torch.device("cpu"), {"run": "fuzz"})


def test_fuzzed_training_states_are_resume_errors_or_resumed(tmp_path):
    trainer = _trainer()
    trainer.train_epoch(progress=False)
    trainer.epoch = 1
    state, path = trainer.state(), tmp_path / "m.pt.state.pt"

    @settings(FUZZ, max_examples=50)  # each resumed state trains one more epoch
    @given(st.data())
    def check(data):
        if data.draw(st.booleans()):
            path.write_bytes(data.draw(damaged_torch_file(state)))
        else:
            field = data.draw(st.sampled_from(sorted(state)))
            path.write_bytes(torch_bytes({**state, field: data.draw(JSON_VALUES)}))
        trainer = _trainer()
        with torch.random.fork_rng(devices=[]):
            try:
                resumed = resume_from(trainer, path, STATE_FORMAT)
            except ToolkitError as e:
                assert str(path) in str(e) and len(str(e).splitlines()) == 1
                return
            if resumed:  # a state that loads trains on
                assert trainer.run(tmp_path / "again.state.pt", tmp_path / "again.log.csv", progress=False)["epochs_run"] == 2

    check()
