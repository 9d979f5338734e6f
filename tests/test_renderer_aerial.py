"""Real Blender renders of the aerial family: masks of multi-part objects, scales, the ground, the CLI."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from clevr_ds import ground
from clevr_ds.annotate import decode_mask
from clevr_ds.camera import Camera
from clevr_ds.dataset import image_file, load_meta, load_scenes
from clevr_ds.validate import validate
from conftest import AERIAL_ARGS, run_cli

pytestmark = pytest.mark.slow


def test_meta_records_the_family_and_its_vocabulary(aerial_split):
    meta = load_meta(aerial_split, "val")
    assert (meta["family"], meta["gsd"], meta["max_tilt_deg"]) == ("aerial", None, 0.0)
    assert meta["vocabulary"]["name"] == "aerial" and meta["vocabulary"]["prompts"] == "aerial"
    assert validate(aerial_split) == []


def test_masks_cover_whole_multi_part_objects_at_their_target_scale(aerial_split):
    for scene in load_scenes(aerial_split, "val"):
        assert scene["family"] == "aerial" and scene["gsd"] > 0
        for obj in scene["objects"]:
            mask = decode_mask(obj["mask"])
            assert mask.shape == (120, 160) and obj["visible_pixels"] == mask.sum() > 0
            # Footprints never overlap and the camera looks down: nothing hides an object, so its visible
            # box is its projected box (every part, glass and wheels included), to within the up to two
            # pixels a sharp bow or nose can end short of the next pixel centre.
            x, y, w, h = obj["bbox"]
            px = np.array(obj["projected_bbox"])
            assert np.all(np.abs(np.array([x, y, x + w, y + h]) - px) <= 2.0), (obj["class"], obj["bbox"], px)
            assert obj["rel_scale"] == pytest.approx(obj["target_scale"], abs=3 / 160)


def test_the_ground_under_each_object_is_painted_as_its_cover(aerial_split):
    for scene in load_scenes(aerial_split, "val"):
        image = np.asarray(Image.open(image_file(aerial_split, "val", scene["image_index"])).convert("RGB"), dtype=float)
        camera = Camera.from_dict(scene["camera"], scene["width"], scene["height"])
        covered = np.zeros(image.shape[:2], dtype=bool)
        for obj in scene["objects"]:
            covered |= decode_mask(obj["mask"])
        rows, cols = np.nonzero(~covered)
        pick = np.random.default_rng(0).choice(len(rows), 300, replace=False)
        points = np.array([camera.ground_point(c + 0.5, r + 0.5)[:2] for r, c in zip(rows[pick], cols[pick])])
        cover = ground.cover_at(scene["ground"], points)
        pixels = image[rows[pick], cols[pick]]
        water, grass = pixels[cover == ground.WATER], pixels[cover == ground.GRASS]
        if len(water):
            assert np.median(water[:, 2] - water[:, 0]) > 0  # water is bluer than red
        if len(grass):
            assert np.median(grass[:, 1] - grass[:, 2]) > 0  # grass is greener than blue


def test_rerendering_a_scene_gives_the_same_image(aerial_split, tmp_path):
    out = tmp_path / "again"
    run_cli("render", "--out", str(out), "--split", "val", "-n", "1", *AERIAL_ARGS)
    first = image_file(aerial_split, "val", 0).read_bytes()
    assert image_file(out, "val", 0).read_bytes() == first


@pytest.mark.parametrize("args, message", [
    (["--family", "clevr", "--gsd", "0.3"], "--gsd"),
    (["--family", "aerial", "--gsd", "0.3", "--scales", "0.01-0.1"], "--scales"),
    (["--family", "aerial", "--gsd", "-1"], "--gsd"),
    (["--family", "aerial", "--max-tilt", "80"], "--max-tilt"),
    (["--family", "ocean"], "--family"),
])  # fmt: skip
def test_family_flags_refuse_what_does_not_fit_in_one_line(tmp_path, args, message):
    proc = run_cli("render", "--out", str(tmp_path / "x"), "-n", "1", "--resolution", "64", *args, check=False)
    assert proc.returncode != 0 and message in proc.stderr and len(proc.stderr.strip().splitlines()) <= 3
    assert not (tmp_path / "x").exists()


def test_backbone_training_speaks_the_aerial_vocabulary(aerial_split):
    import torch

    from clevr_ds.captions import EMPTY_CAPTIONS
    from clevr_ds.dataset import load_vocabulary
    from detailclip.data import SplitImages
    from detailclip.training.backbone_trainer import BackboneTrainConfig, BackboneTrainer

    data, vocabulary = SplitImages.load(aerial_split, "val"), load_vocabulary(aerial_split, "val")
    config = BackboneTrainConfig(model="tiny-clip-vit-p8-32", steps=2, batch_size=16, images_per_batch=3,
                                 hard_negatives=1, class_weight=1.0, class_vector_weight=1.0, min_pixels=2)
    trainer = BackboneTrainer(data, data, vocabulary, config, torch.device("cpu"), {"data": "aerial"})
    assert trainer.config.templates == "aerial" and trainer.run_config["train"]["templates"] == "aerial"
    assert trainer.classes == list(vocabulary.shapes) and trainer.class_vectors.shape[0] == 8
    _, captions, _, present = trainer.batch()
    shown = {name for row in present.tolist() for name, on in zip(trainer.classes, row) if on}
    assert shown and shown <= set(vocabulary.shapes)
    assert not any("floor" in text for text in captions)
    empty = [text for text in captions if not any(shape in text for shape in vocabulary.shapes)]
    assert all(any(e in text for e in EMPTY_CAPTIONS["aerial"]) for text in empty)
    assert trainer.train_step()["loss"] > 0


def test_aerial_data_gets_the_aerial_weights_unless_weights_are_named(aerial_split, tiny_dataset, tmp_path):
    """A split's family (from its folder or its WebDataset shards) chooses `bench`'s default weights."""
    from benchmark.results import load_run
    from benchmark.runner import default_weights
    from benchmark.sources import SourceSpec
    from detailclip.registry import FAMILY_WEIGHTS

    assert SourceSpec(data=aerial_split, split="val").family() == "aerial"
    assert SourceSpec(data=tiny_dataset, split="val").family() == "clevr"
    assert SourceSpec(data=tmp_path, split="val").family() is None
    for root, family in ((aerial_split, "aerial"), (tiny_dataset, "clevr")):  # and from the split's shards
        shards = tmp_path / f"{family}-wds"
        run_cli("export", str(root), "--format", "wds", "--split", "val", "--out", str(shards))
        assert SourceSpec(wds=str(shards)).family() == family
    assert SourceSpec(wds=str(tmp_path / "none")).family() is None
    tag, fusion = FAMILY_WEIGHTS["aerial"]
    assert fusion.is_file() and default_weights(None, None, None, "aerial") == (fusion, tag)
    assert default_weights(None, None, None, None) == (FAMILY_WEIGHTS["clevr"][1], "clevr-ds-v3")
    assert default_weights(None, "ViT-B-32", None, "aerial") == (None, None)
    assert default_weights(tmp_path / "x.pt", None, None, "aerial") == (tmp_path / "x.pt", None)
    run_cli("bench", "--data", str(aerial_split), "--split", "val", "--model", "clip,detailclip", "--out",
            str(tmp_path / "runs"), "--buckets", "0.05,0.1,0.3", "--quiet")
    records = [load_run(p) for p in sorted((tmp_path / "runs").glob("*.json"))]
    assert sorted(r["method"] for r in records) == ["clip", "detailclip"]
    assert {r["pretrained"] for r in records} == {tag} and {r["protocol"]["templates"] for r in records} == {"aerial"}
