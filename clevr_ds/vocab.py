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


@dataclass(frozen=True)
class Vocabulary:
    name: str
    shapes: Mapping[str, Mapping]
    colors: Mapping[str, tuple[int, int, int]]
    materials: Mapping[str, Mapping]

    @classmethod
    def from_dict(cls, data: Mapping) -> "Vocabulary":
        for key in ("shapes", "colors", "materials"):
            if not data.get(key):
                raise ValueError(f"vocabulary has no {key}")
        return cls(
            name=data.get("name", "custom"),
            shapes={k: dict(v) for k, v in data["shapes"].items()},
            colors={k: tuple(int(c) for c in v) for k, v in data["colors"].items()},
            materials={k: dict(v) for k, v in data["materials"].items()},
        )

    @classmethod
    def load(cls, path: str | Path | None = None) -> "Vocabulary":
        path = Path(path) if path is not None else DEFAULT_VOCABULARY_PATH
        return cls.from_dict(json.loads(path.read_text()))

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "shapes": {k: dict(v) for k, v in self.shapes.items()},
            "colors": {k: list(v) for k, v in self.colors.items()},
            "materials": {k: dict(v) for k, v in self.materials.items()},
        }

    @property
    def class_attributes(self) -> list[tuple[str, str]]:
        """(colour, shape) of every retrieval class, colour-major."""
        return [(c, s) for c in self.colors for s in self.shapes]

    @property
    def classes(self) -> list[str]:
        """All retrieval classes in `class_attributes` order: 'gray cube', 'gray sphere', ..."""
        return [class_name(c, s) for c, s in self.class_attributes]

    def linear_rgb(self, color: str) -> tuple[float, float, float]:
        """The colour as linear RGB in [0, 1] (the vocabulary stores sRGB 0-255)."""
        return tuple(srgb_to_linear(v / 255.0) for v in self.colors[color])


def class_name(color: str, shape: str) -> str:
    return f"{color} {shape}"


def srgb_to_linear(v: float) -> float:
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4
