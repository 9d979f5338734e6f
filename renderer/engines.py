"""Configure Blender's render engines from `RenderSettings`."""

from __future__ import annotations

import bpy

from .settings import RenderError, RenderSettings

GPU_BACKENDS = ("OPTIX", "CUDA", "HIP", "ONEAPI", "METAL")


def enable_gpu() -> str:
    """Make Cycles use the first GPU backend that has a device; return its name, or RenderError."""
    prefs = bpy.context.preferences.addons["cycles"].preferences
    for backend in GPU_BACKENDS:
        try:
            prefs.compute_device_type = backend
        except TypeError:
            continue
        prefs.get_devices()
        gpus = [d for d in prefs.devices if d.type == backend]
        if gpus:
            for d in prefs.devices:
                d.use = d.type == backend
            return backend
    raise RenderError("no GPU usable by Cycles was found; render with --device cpu")


def _configure_cycles(scene: bpy.types.Scene, s: RenderSettings, seed: int) -> None:
    scene.render.engine = "CYCLES"
    c = scene.cycles
    c.device = "GPU" if s.device == "gpu" else "CPU"
    if s.device == "gpu":
        enable_gpu()
    c.samples = s.samples
    c.use_adaptive_sampling = s.adaptive_threshold > 0
    if s.adaptive_threshold > 0:
        c.adaptive_threshold = s.adaptive_threshold
    c.use_denoising = s.denoise
    if s.denoise:
        c.denoiser = "OPENIMAGEDENOISE"
        c.denoising_input_passes = "RGB_ALBEDO_NORMAL"
        c.denoising_prefilter = s.denoise_prefilter
        c.denoising_quality = s.denoise_quality
    c.max_bounces = s.max_bounces
    c.diffuse_bounces = s.diffuse_bounces
    c.glossy_bounces = s.glossy_bounces
    c.transmission_bounces = c.volume_bounces = c.transparent_max_bounces = 0
    c.caustics_reflective = c.caustics_refractive = False
    c.seed = seed % (2**31)


def configure(scene: bpy.types.Scene, s: RenderSettings, seed: int) -> None:
    """Apply engine, quality, threads, colour management and PNG output settings."""
    if s.engine == "cycles":
        _configure_cycles(scene, s, seed)
    elif s.engine == "eevee":
        scene.render.engine = "BLENDER_EEVEE"
        scene.eevee.taa_render_samples = s.samples
    elif s.engine == "workbench":
        scene.render.engine = "BLENDER_WORKBENCH"
        scene.display.render_aa = str(min((n for n in (1, 5, 8, 11, 16, 32) if n >= s.samples), default=32))
        shading = scene.display.shading
        shading.light = "STUDIO"
        shading.color_type = "MATERIAL"
        shading.show_shadows = True
    else:
        raise RenderError(f"unknown engine {s.engine!r}")
    scene.render.threads_mode = "FIXED" if s.threads else "AUTO"
    if s.threads:
        scene.render.threads = s.threads
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    img = scene.render.image_settings
    img.file_format = "PNG"
    img.color_mode = "RGB"
    img.color_depth = "8"
    img.compression = s.png_compression
