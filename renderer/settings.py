"""Render settings as data: engines, quality presets and their knobs. Imports no bpy."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from infra.errors import ToolkitError

ENGINES = ("cycles", "eevee", "workbench")
DEVICES = ("cpu", "gpu")


class RenderError(ToolkitError, RuntimeError):
    """The renderer cannot do what was asked (e.g. a GPU render without a GPU)."""


@dataclass(frozen=True)
class RenderSettings:
    engine: str = "cycles"
    device: str = "cpu"
    samples: int = 4
    adaptive_threshold: float = 0.05  # Cycles noise threshold; 0 disables adaptive sampling
    denoise: bool = True
    denoise_quality: str = "BALANCED"  # OIDN: HIGH, BALANCED or FAST
    denoise_prefilter: str = "FAST"  # ACCURATE also denoises the albedo and normal guides (~2x the cost)
    max_bounces: int = 4
    diffuse_bounces: int = 1
    glossy_bounces: int = 2
    threads: int = 0  # 0: Blender picks (all cores)
    png_compression: int = 15

    def to_dict(self) -> dict:
        return asdict(self)

    def with_overrides(self, **kw) -> "RenderSettings":
        return replace(self, **{k: v for k, v in kw.items() if v is not None})


PRESETS: dict[str, RenderSettings] = {
    "default": RenderSettings(),
    "fast": RenderSettings(samples=1, adaptive_threshold=0.0, denoise_quality="FAST", max_bounces=2, diffuse_bounces=1, glossy_bounces=1),
    "high": RenderSettings(samples=16, adaptive_threshold=0.01, denoise_quality="HIGH", denoise_prefilter="ACCURATE", max_bounces=8, diffuse_bounces=2, glossy_bounces=4),
    "reference": RenderSettings(samples=256, adaptive_threshold=0.0, denoise_quality="HIGH", denoise_prefilter="ACCURATE", max_bounces=8, diffuse_bounces=2, glossy_bounces=4),
    "eevee": RenderSettings(engine="eevee", samples=16, denoise=False),
    "preview": RenderSettings(engine="workbench", samples=8, denoise=False),
}


def preset(name: str) -> RenderSettings:
    if name not in PRESETS:
        raise ValueError(f"unknown render preset {name!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[name]
