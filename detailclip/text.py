"""Prompt templates (a registry of named lists) and class-name prompts."""

from __future__ import annotations

from typing import Callable, Sequence

TemplateSpec = str | Sequence[str]
AERIAL_TEMPLATES = (
    "an aerial photo of a {}.", "a satellite image of a {}.", "a satellite photo of a {}.", "an overhead view of a {}.",
    "a remote sensing image of a {}.", "a top-down photo of a {}.", "an aerial image showing a {}.",
)  # fmt: skip


def _openai80() -> list[str]:
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    return [t("{}") for t in OPENAI_IMAGENET_TEMPLATES]


def _short() -> list[str]:
    from open_clip.zero_shot_metadata import SIMPLE_IMAGENET_TEMPLATES

    return [t("{}") for t in SIMPLE_IMAGENET_TEMPLATES]


TEMPLATE_SETS: dict[str, Callable[[], list[str]]] = {
    "openai80": _openai80,  # CLIP's 80 ImageNet templates
    "short": _short,  # CLIP's 7-template subset
    "plain": lambda: ["{}"],  # the class name alone
    "photo": lambda: ["a photo of a {}."],
    "aerial": lambda: list(AERIAL_TEMPLATES),  # the aerial family's prompts (remote sensing wording)
}


DEFAULT_TEMPLATES = "openai80"


def templates_for(templates: TemplateSpec | None, prompts: str | None) -> TemplateSpec:
    """The templates asked for, else the data's own prompt set (a scene family's `prompts`), else DEFAULT_TEMPLATES."""
    return templates or prompts or DEFAULT_TEMPLATES


def resolve_templates(templates: TemplateSpec) -> list[str]:
    """A named template set or an explicit list of strings with one "{}" each."""
    if isinstance(templates, str):
        if templates not in TEMPLATE_SETS:
            raise ValueError(f"unknown template set {templates!r} (known: {', '.join(TEMPLATE_SETS)})")
        return TEMPLATE_SETS[templates]()
    templates = list(templates)
    bad = [t for t in templates if t.count("{}") != 1]
    if not templates or bad:
        raise ValueError(f"templates must be a non-empty list with one '{{}}' each, bad: {bad[:3]}")
    return templates


def class_prompts(classnames: Sequence[str], templates: TemplateSpec) -> list[list[str]]:
    """One list of prompts per class name, in template order."""
    resolved = resolve_templates(templates)
    return [[t.format(name) for t in resolved] for name in classnames]
