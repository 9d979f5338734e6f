"""The documentation: the MkDocs site builds with --strict, and README.md stays a short front door into it.

Oracles: MkDocs itself (with `strict: true` and every `validation:` check at `warn`, a broken link,
a missing anchor, a page left out of the nav or a missing README snippet fails the build); the
click group `cli` for the list of commands the reference must show; the files on disk for the
README's links; `.ci/run` against the README's install and test line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from markdown.extensions.toc import slugify

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
MAX_README_LINES = 200
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _anchors(markdown: str) -> set[str]:
    """The ids of a Markdown file's headings, as MkDocs' toc (and, for plain headings, GitHub) makes them."""
    text = _FENCE.sub("", markdown)
    return {slugify(m.group(1).strip(), "-") for m in re.finditer(r"^#{1,6}\s+(.+)$", text, re.M)}


def _relative_links(markdown: str) -> list[str]:
    return [t for t in _LINK.findall(_FENCE.sub("", markdown)) if not re.match(r"[a-z]+:", t)]


def test_docs_build_strict(tmp_path):
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert proc.returncode == 0, f"mkdocs build --strict failed ({proc.returncode}):\n{proc.stderr}\n{proc.stdout}"
    # The command reference is generated from the click group: every command has its section.
    from cli import cli

    reference = (site / "cli" / "index.html").read_text()
    missing = [name for name in cli.commands if f'id="clevr-ds-{name}"' not in reference]
    assert not missing, f"docs/cli.md shows no reference for {missing}"
    # The README's v1 table reaches the benchmark page through its snippet, caption and share sentence with it.
    benchmark = (site / "benchmark" / "index.html").read_text()
    snippet = README.read_text().split("[start:bench-v1] -->")[1].split("<!-- --8<-- [end:bench-v1]")[0]
    detailclip_map = next(line.split(" | ")[1] for line in snippet.splitlines() if line.startswith("| detailclip |"))
    share = re.search(r"\d+\.\d%", snippet.split("\n\n")[-1]).group()
    assert "CLEVR-DS-bench v1" in benchmark and detailclip_map in benchmark and share in benchmark
    assert "--8&lt;--" not in benchmark and "--8<--" not in benchmark
    # The library API pages hold generated entries, not just the directives.
    assert "folder_lock" in (site / "api" / "infra" / "index.html").read_text()


def test_readme_is_short_and_links_into_the_docs():
    text = README.read_text()
    lines = text.count("\n") + (not text.endswith("\n"))
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines, more than {MAX_README_LINES}: move text into docs/"
    links = _relative_links(text)
    broken = []
    for link in links:
        target, _, anchor = link.partition("#")
        path = README if not target else (ROOT / target)
        if not path.exists():
            broken.append(f"{link} (no file)")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path.read_text()):
            broken.append(f"{link} (no heading with that anchor)")
    assert not broken, f"README.md links that do not resolve: {broken}"
    linked = {(ROOT / link.partition("#")[0]).resolve() for link in links if link.partition("#")[0]}
    pages = [p for p in sorted(DOCS.glob("*.md"))] + [DOCS / "api" / "index.md"]
    unlinked = [str(p.relative_to(ROOT)) for p in pages if p.resolve() not in linked]
    assert not unlinked, f"README.md links to none of {unlinked}"


def test_ci_installs_and_runs_what_the_readme_says():
    readme_line = next(line for line in README.read_text().splitlines() if "/pip install" in line and "pytest" in line)
    extras = re.search(r"pip install -e '(\.\[[^]]*\])'", readme_line).group(1)
    test_command = readme_line.rsplit("&&", 1)[1].strip()
    assert "docs" in extras.strip(".[]").split(","), "the README's install line must install the docs extra"
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.findall(r"pip install (?:-q )?-e '([^']*)'", ci) == [extras]
    assert test_command in ci.splitlines()
