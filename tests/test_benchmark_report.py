"""The HTML report, as a person sees it in a real (headless) Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from cli import main
from clevr_ds.dataset import image_name
from clevr_ds.vocab import Vocabulary
from tests.benchmark_fixtures import make_checkpoint, make_dataset, random_scenes

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HEADLESS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A bench of clip, cc-max and detailclip on 10 hand-made images, and its report."""
    root = tmp_path_factory.mktemp("report")
    data = make_dataset(root / "data", random_scenes(10, seed=5))
    checkpoint = make_checkpoint(root / "fusion.pt", k=2)
    results = root / "results"
    args = ["--data", str(data), "--out", str(results), "--templates", "short", "--quiet", "--checkpoint", str(checkpoint)]
    assert main(["bench", *args, "--model", "clip,cc-max,detailclip"]) == 0
    out = root / "report.html"
    assert main(["report", str(results), "--data", str(data), "--out", str(out), "--gallery-queries", "2"]) == 0
    return out, results


def _chromium(*args: str, profile) -> subprocess.CompletedProcess:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI (.ci/run installs Debian's chromium)")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    return subprocess.run([CHROMIUM, *HEADLESS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


class _Page(HTMLParser):
    """What a reader sees: table cells, image sources and classes, the body's data attributes."""

    def __init__(self):
        super().__init__()
        self.cells, self.images, self.body, self._cell = [], [], {}, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "body":
            self.body = attrs
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "td":
            self._cell = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.cells.append(self._cell)
            self._cell = None


def test_report_is_self_contained(report):
    html, _ = report
    text = html.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text)
    assert "<svg" in text and text.count("data:image/jpeg;base64,") >= 3 * 2 * 2  # 3 methods x 2 queries x >= 2 images


def test_chromium_shows_the_tables_and_every_image(report, tmp_path):
    html, results = report
    proc = _chromium("--virtual-time-budget=10000", "--dump-dom", html.as_uri(), profile=tmp_path / "profile")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not [line for line in proc.stderr.splitlines() if "CONSOLE" in line], "console messages on the page"
    page = _Page()
    page.feed(proc.stdout)
    assert page.images and int(page.body["data-images-loaded"]) == len(page.images)
    shown = " ".join(page.cells)
    for path in results.glob("*.json"):
        record = json.loads(path.read_text())
        overall = record["metrics"]["overall"]
        lo, hi = overall["mAP_ci"]
        assert f"{overall['mAP']:.3f} ({lo:.3f}-{hi:.3f})" in shown, record["method"]
        for cls, figures in overall["per_class"].items():
            if figures["AP"] is not None:
                assert f"{figures['AP']:.3f}" in shown
    gallery = [img for img in page.images if img.get("class") in ("hit", "miss")]
    assert len(gallery) >= 3 * 2 and all(img["src"].startswith("data:image/jpeg;base64,") for img in gallery)


def test_screenshot_is_not_blank(report, tmp_path):
    from PIL import Image, ImageStat

    html, _ = report
    shot = tmp_path / "shot.png"
    proc = _chromium("--hide-scrollbars", "--window-size=1280,2000", f"--screenshot={shot}", html.as_uri(),
                     profile=tmp_path / "profile")
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.size == (1280, 2000)
        assert max(ImageStat.Stat(image.convert("L")).stddev) > 20  # text, tables and the plot, not an empty page


def test_report_refuses_a_folder_without_runs(tmp_path, capsys):
    (tmp_path / "notes.json").write_text("{}")
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r.html")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: no run records") and not (tmp_path / "r.html").exists()


def _gallery_images(html: str) -> list[dict]:
    page = _Page()
    page.feed(html)
    return [img for img in page.images if img.get("class") in ("hit", "miss")]


def test_galleries_come_from_coco_data_too_and_only_for_the_runs_of_that_data(tmp_path, capsys):
    """The report reads the data through the same source options as bench: a COCO set (written here by
    hand from the scenes) gets its galleries with the COCO image names, and data that no run scored
    gets none, with one warning line."""
    scenes = random_scenes(8, seed=9)
    data = make_dataset(tmp_path / "data", scenes)
    classes = Vocabulary.load().classes
    images = [{"id": i, "file_name": f"{image_name('test', i)}.png", "width": 64, "height": 64} for i in range(len(scenes))]
    annotations = [{"id": n, "image_id": i, "category_id": classes.index(o["class"]) + 1, "bbox": o["bbox"],
                    "area": o["bbox"][2] * o["bbox"][3], "iscrowd": 0}
                   for n, (i, o) in enumerate((i, o) for i, objs in enumerate(scenes) for o in objs)]  # fmt: skip
    instances = tmp_path / "instances_test.json"
    instances.write_text(json.dumps({"images": images, "annotations": annotations,
                                     "categories": [{"id": c + 1, "name": name} for c, name in enumerate(classes)]}))
    coco = ["--coco", str(instances), "--image-root", str(data / "images" / "test")]
    results = tmp_path / "results"
    assert main(["bench", *coco, "--out", str(results), "--templates", "short", "--quiet", "--model", "clip,cc-max",
                 "--cover-k", "2", "--buckets", "0.05,0.12,0.3"]) == 0  # fmt: skip
    out = tmp_path / "report.html"
    assert main(["report", str(results), *coco, "--out", str(out), "--gallery-queries", "2"]) == 0
    gallery = _gallery_images(out.read_text())
    assert len(gallery) >= 2 * 2 and {img["alt"] for img in gallery} <= {im["file_name"] for im in images}

    capsys.readouterr()
    other = make_dataset(tmp_path / "other", random_scenes(4, seed=10))
    assert main(["report", str(results), "--data", str(other), "--out", str(out)]) == 0
    assert _gallery_images(out.read_text()) == []
    err = capsys.readouterr().err.splitlines()
    assert any(line.startswith("warning: no run in") and "scored the data" in line for line in err), err


def test_report_source_flags_conflict_in_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path), "--coco", str(tmp_path / "a.json"), "--out", str(tmp_path / "r.html")]) != 0
    assert capsys.readouterr().err == "error: --coco and --image-root go together\n"
