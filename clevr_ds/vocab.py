"""The object vocabulary (shapes, colours, materials), kept as data in `data/vocabulary.json`.

An object's retrieval class is "<colour> <shape>"; with CLEVR's 8 colours and 3 shapes that is 24
classes. A dataset stores the vocabulary it was rendered with, so extended vocabularies stay
self-describing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

DEFAULT_VOCABULARY_PATH = Path(__file__).with_name("data") / "vocabulary.json"
DEFAULT_CLASS_NAME = "{color} {shape}"


@dataclass(frozen=True)
class Vocabulary:
    name: str
    shapes: Mapping[str, Mapping]
    colors: Mapping[str, tuple[int, int, int]]
    materials: Mapping[str, Mapping]
    class_name: str = DEFAULT_CLASS_NAME  # a format of {color} and {shape}, which names each class
    prompts: str | None = None  # the family's prompt template set (detailclip.text), None: the benchmark's default

    @classmethod
    def from_dict(cls, data: Mapping) -> "Vocabulary":
        for key in ("shapes", "colors", "materials"):
            if not data.get(key):
                raise ValueError(f"vocabulary has no {key}")
        fmt = data.get("class_name", DEFAULT_CLASS_NAME)
        if not isinstance(fmt, str) or "{shape}" not in fmt or fmt.replace("{shape}", "").replace("{color}", "").count("{"):
            raise ValueError(f"vocabulary class_name {fmt!r} must be a format of {{shape}} and optionally {{color}}")
        return cls(
            name=data.get("name", "custom"),
            shapes={k: dict(v) for k, v in data["shapes"].items()},
            colors={k: tuple(int(c) for c in v) for k, v in data["colors"].items()},
            materials={k: dict(v) for k, v in data["materials"].items()},
            class_name=fmt,
            prompts=data.get("prompts"),
        )

    @classmethod
    def load(cls, path: str | Path | None = None) -> "Vocabulary":
        path = Path(path) if path is not None else DEFAULT_VOCABULARY_PATH
        return cls.from_dict(json.loads(path.read_text()))

    @classmethod
    def of_family(cls, family: str) -> "Vocabulary":
        """The vocabulary a scene family ships with (data/vocabulary.json for clevr, data/FAMILY_vocabulary.json)."""
        return cls.load(DEFAULT_VOCABULARY_PATH if family == "clevr" else DEFAULT_VOCABULARY_PATH.with_name(f"{family}_vocabulary.json"))

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "shapes": {k: dict(v) for k, v in self.shapes.items()},
            "colors": {k: list(v) for k, v in self.colors.items()},
            "materials": {k: dict(v) for k, v in self.materials.items()},
            **({"class_name": self.class_name} if self.class_name != DEFAULT_CLASS_NAME else {}),
            **({"prompts": self.prompts} if self.prompts is not None else {}),
        }

    @property
    def by_color(self) -> bool:
        """Whether a class names its colour (CLEVR) or its shape alone (aerial)."""
        return "{color}" in self.class_name

    @property
    def class_attributes(self) -> list[tuple[str | None, str]]:
        """(colour, shape) of every retrieval class, colour-major; colour None when classes are shapes alone."""
        if not self.by_color:
            return [(None, s) for s in self.shapes]
        return [(c, s) for c in self.colors for s in self.shapes]

    @property
    def classes(self) -> list[str]:
        """All retrieval classes in `class_attributes` order: 'gray cube', 'gray sphere', ... or 'car', 'van', ..."""
        return [self.class_of(c, s) for c, s in self.class_attributes]

    def class_of(self, color: str | None, shape: str) -> str:
        """The retrieval class of an object of this colour and shape."""
        return self.class_name.format(color=color, shape=shape)

    def colors_of(self, shape: str) -> list[str]:
        """The colours an object of `shape` may take: its own `colors` list, else every colour."""
        return list(self.shapes[shape].get("colors", self.colors))

    def materials_of(self, shape: str) -> list[str]:
        """The materials an object of `shape` may take: its own `materials` list, else every material."""
        return list(self.shapes[shape].get("materials", self.materials))

    def linear_rgb(self, color: str) -> tuple[float, float, float]:
        """The colour as linear RGB in [0, 1] (the vocabulary stores sRGB 0-255)."""
        return tuple(srgb_to_linear(v / 255.0) for v in self.colors[color])


def class_name(color: str, shape: str) -> str:
    return f"{color} {shape}"


def srgb_to_linear(v: float) -> float:
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4
