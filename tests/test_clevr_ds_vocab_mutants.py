"""clevr_ds.vocab (issue #15 item 5: mutation testing). Oracles: CLEVR's published vocabulary
(8 colours x 3 shapes, its sRGB values) and the sRGB transfer function of IEC 61966-2-1."""

from __future__ import annotations

import json

import pytest

from clevr_ds.vocab import DEFAULT_VOCABULARY_PATH, Vocabulary, class_name, srgb_to_linear

CLEVR_COLORS = {"gray": (87, 87, 87), "red": (173, 35, 35), "blue": (42, 75, 215), "green": (29, 105, 20),
                "brown": (129, 74, 25), "purple": (129, 38, 192), "cyan": (41, 208, 208), "yellow": (255, 238, 51)}


def test_default_vocabulary_is_clevrs():
    vocab = Vocabulary.load()
    assert vocab.name == "clevr"
    assert dict(vocab.colors) == CLEVR_COLORS
    assert list(vocab.shapes) == ["cube", "sphere", "cylinder"]
    assert set(vocab.materials) == {"rubber", "metal"}
    assert vocab.classes[:4] == ["gray cube", "gray sphere", "gray cylinder", "red cube"]
    assert len(vocab.classes) == 24 and vocab.classes[-1] == "yellow cylinder"
    assert vocab.class_attributes[3] == ("red", "cube")
    assert Vocabulary.load(DEFAULT_VOCABULARY_PATH) == vocab
    assert Vocabulary.load(str(DEFAULT_VOCABULARY_PATH)) == vocab


def test_round_trip_through_a_file(tmp_path):
    data = {"name": "tiny", "shapes": {"cone": {"mesh": "cone"}}, "colors": {"pink": ["255", 192.0, 203]},
            "materials": {"wax": {"roughness": 0.5}}}
    path = tmp_path / "v.json"
    path.write_text(json.dumps(data))
    vocab = Vocabulary.load(path)
    assert vocab.colors == {"pink": (255, 192, 203)} and all(type(c) is int for c in vocab.colors["pink"])
    assert vocab.to_dict() == {"name": "tiny", "shapes": {"cone": {"mesh": "cone"}}, "colors": {"pink": [255, 192, 203]},
                               "materials": {"wax": {"roughness": 0.5}}}  # fmt: skip
    assert Vocabulary.from_dict(vocab.to_dict()) == vocab
    assert vocab.classes == ["pink cone"] and class_name("pink", "cone") == "pink cone"
    assert Vocabulary.from_dict({k: v for k, v in data.items() if k != "name"}).name == "custom"


@pytest.mark.parametrize("missing", ["shapes", "colors", "materials"])
def test_a_vocabulary_needs_every_part(missing):
    data = {"shapes": {"cube": {}}, "colors": {"red": [1, 2, 3]}, "materials": {"rubber": {}}}
    for value in (None, {}):
        broken = {**data, missing: value} if value is not None else {k: v for k, v in data.items() if k != missing}
        with pytest.raises(ValueError, match=f"^vocabulary has no {missing}$"):
            Vocabulary.from_dict(broken)


def test_srgb_to_linear_follows_the_standard():
    assert srgb_to_linear(0.0) == 0.0 and srgb_to_linear(1.0) == pytest.approx(1.0)
    assert srgb_to_linear(0.04045) == pytest.approx(0.04045 / 12.92, rel=1e-12)  # linear segment up to 0.04045
    assert srgb_to_linear(0.0405) == pytest.approx(((0.0405 + 0.055) / 1.055) ** 2.4, rel=1e-12)
    assert srgb_to_linear(0.5) == pytest.approx(0.214041, abs=1e-6)
    assert srgb_to_linear(0.02) == pytest.approx(0.001548, abs=1e-6)
    assert Vocabulary.load().linear_rgb("gray") == pytest.approx((0.0953075,) * 3, abs=1e-6)
