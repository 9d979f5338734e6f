"""A user's ground image without Blender (`clevr_ds.ground_image`, issue #27): checked once, cropped per scene by
its seed (tiled when small), the texture exactly what the recorded crop box and turn say, objects anywhere on it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from clevr_ds import aerial, ground_image
from clevr_ds.families import sample_scene
from clevr_ds.ground_image import GroundError, GroundImage, image_pixel, read_ground, sample_crop, srgb_to_linear, texture
from clevr_ds.sampling import SceneConfig, config_from_dict, config_to_dict
from clevr_ds.scales import parse_scales
from clevr_ds.vocab import Vocabulary

AERIAL = Vocabulary.of_family("aerial")


def noise_image(width: int, height: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture
def png(tmp_path):
    path = tmp_path / "tile.png"
    Image.fromarray(noise_image(300, 200)).save(path)
    return path


def config(ground: GroundImage | None, **kw) -> SceneConfig:
    return SceneConfig(split="test", scales=tuple(parse_scales("0.03-0.1")), width=320, height=240, objects=(4, 8),
                       vocabulary=AERIAL, family="aerial", ground=ground, **kw)  # fmt: skip


def test_an_image_is_recorded_by_content_hash_size_and_format(png, tmp_path):
    ground = read_ground(png, 0.5)
    assert (ground.width, ground.height, ground.gsd) == (300, 200, 0.5)
    assert ground.file == f"assets/ground/{ground.sha256[:16]}.png" and len(ground.sha256) == 64
    Image.open(png).convert("RGB").save(tmp_path / "tile.jpeg", quality=95)
    Image.open(png).save(tmp_path / "tile.tiff")
    assert read_ground(tmp_path / "tile.jpeg").file.endswith(".jpg") and read_ground(tmp_path / "tile.tiff").file.endswith(".tif")
    assert GroundImage.from_dict(json.loads(json.dumps(ground.to_dict()))) == ground


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "no such file"),
    (lambda p: p.mkdir(), "not a file"),
    (lambda p: p.write_text("not an image"), "not an image Pillow can read"),
    (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40), "not an image Pillow can read"),
    (lambda p: Image.fromarray(noise_image(200, 63)).save(p, format="PNG"), "200x63 px is too small"),
], ids=["missing", "folder", "text", "truncated-png", "too-small"])  # fmt: skip
def test_an_unusable_image_is_one_line(tmp_path, make, message):
    path = tmp_path / "ground.png"
    make(path)
    with pytest.raises(GroundError, match=message) as e:
        read_ground(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_sixteen_bit_grey_is_read_as_eight_bit_grey(tmp_path):
    grey = np.tile(np.arange(0, 65536, 256, dtype=np.uint16), (64, 1))[:, :256]
    Image.fromarray(grey).save(tmp_path / "g16.png")
    pixels = ground_image._decode(tmp_path / "g16.png")[0]
    assert pixels.shape == (64, 256, 3) and pixels[0, 0].tolist() == [0, 0, 0] and abs(int(pixels[0, -1, 0]) - 255) <= 1


def test_a_crop_lies_inside_a_large_image_and_tiles_a_small_one():
    big, small = GroundImage("f", "0" * 64, 1000, 800), GroundImage("f", "0" * 64, 100, 300)
    rng = np.random.default_rng(0)
    turns = set()
    for _ in range(50):
        crop = sample_crop(rng, big, 100.0, 0.5)  # 400 px of a 1000 x 800 image
        x0, y0, x1, y1 = crop["box_px"]
        assert 0 <= x0 and x1 <= 1000 and 0 <= y0 and y1 <= 800 and x1 - x0 == pytest.approx(400) and y1 - y0 == pytest.approx(400)
        assert not crop["tiled"] and crop["gsd_m"] == 0.5
        turns.add(crop["rotation_deg"])
        crop = sample_crop(rng, small, 100.0, 0.5)  # 400 px: wider and taller than the image
        assert crop["tiled"] and 0 <= crop["box_px"][0] < 100 and 0 <= crop["box_px"][1] < 300
    assert turns == {0, 90, 180, 270}
    with_gsd = sample_crop(np.random.default_rng(0), GroundImage("f", "0" * 64, 1000, 800, gsd=2.0), 100.0, 0.5)
    assert with_gsd["gsd_m"] == 2.0 and with_gsd["box_px"][2] - with_gsd["box_px"][0] == pytest.approx(100)


def test_the_texture_of_a_one_to_one_crop_is_the_image_in_linear_rgb():
    pixels = noise_image(160, 120)
    layout = {"half_extent_m": 32.0, "box_px": [20.0, 30.0, 84.0, 94.0], "rotation_deg": 0, "image_size": [160, 120]}
    rgb = texture(layout, pixels, 64)
    assert rgb.dtype == np.float32 and rgb.shape == (64, 64, 3)
    assert np.allclose(rgb, srgb_to_linear(pixels[30:94, 20:84]), atol=1e-5)
    assert srgb_to_linear(np.array([0, 255]))[1] == pytest.approx(1.0) and srgb_to_linear(np.array([128]))[0] == pytest.approx(0.2158, abs=1e-3)


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
@pytest.mark.parametrize("box", [[20.0, 30.0, 84.0, 94.0], [130.0, 90.0, 194.0, 154.0]], ids=["inside", "tiled"])
def test_image_pixel_finds_each_texel_where_the_texture_took_it(rotation, box):
    """The texture (north up, turned, wrapped) and `image_pixel` (what a test or user maps a ground point with) agree
    texel by texel; the second box leaves the 160 x 120 image on both axes, so it wraps."""
    pixels = noise_image(160, 120)
    r = 32.0
    layout = {"half_extent_m": r, "box_px": box, "rotation_deg": rotation, "image_size": [160, 120]}
    rgb = texture(layout, pixels, 64)
    centres = (np.arange(64) + 0.5) / 64 * 2 * r - r
    xy = np.stack(np.meshgrid(centres, centres[::-1]), -1)  # row 0 north, column 0 west
    px = image_pixel(layout, xy)
    expected = srgb_to_linear(pixels[np.floor(px[..., 1]).astype(int), np.floor(px[..., 0]).astype(int)])
    assert np.allclose(rgb, expected, atol=1e-5)


def test_a_crop_far_larger_than_the_texture_is_thinned_not_loaded_whole():
    pixels = np.zeros((2000, 2000, 3), np.uint8)
    pixels[:, 1000:] = 255  # west half black, east half white
    layout = {"half_extent_m": 1000.0, "box_px": [0.0, 0.0, 2000.0, 2000.0], "rotation_deg": 0, "image_size": [2000, 2000]}
    rgb = texture(layout, pixels, 50)
    assert rgb.shape == (50, 50, 3) and np.all(rgb[:, :24] == 0) and np.all(rgb[:, 26:] == 1)


def test_scenes_on_an_image_draw_their_crop_by_seed_and_place_every_class_anywhere():
    ground = GroundImage("assets/ground/abc.png", "a" * 64, 512, 512)
    cfg = config(ground)
    scenes = [sample_scene(cfg, i) for i in range(10)]
    assert sample_scene(cfg, 3) == scenes[3]
    classes = set()
    for scene in scenes:
        layout = scene["ground"]
        assert layout["kind"] == "image" and layout["sha256"] == ground.sha256 and layout["file"] == ground.file
        assert layout["half_extent_m"] > 0 and layout["rotation_deg"] in (0, 90, 180, 270)
        for i, obj in enumerate(scene["objects"]):
            assert obj["cover"] == "any"
            classes.add(obj["class"])
            for other in scene["objects"][i + 1 :]:
                assert aerial.footprints_apart(np.array(obj["footprint"]), np.array(other["footprint"]), 0.0)
    assert {"ship", "small boat", "car"} <= classes  # ships and cars alike: the image has no water or roads to tell
    assert len({json.dumps(s["ground"]["box_px"]) for s in scenes}) == len(scenes)


def test_the_meta_records_the_image_only_when_there_is_one():
    ground = GroundImage("assets/ground/abc.png", "a" * 64, 512, 512, gsd=0.3)
    data = config_to_dict(config(ground))
    assert data["ground"] == ground.to_dict() and config_from_dict(data) == config(ground)
    assert "ground" not in config_to_dict(config(None)) and config_from_dict(config_to_dict(config(None))).ground is None
