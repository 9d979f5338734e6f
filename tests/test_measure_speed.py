"""The measuring tools of issue #30: a child's peak RSS is its own, one image's render phases add up, and the GPU check (item 3) on CPU, small: its
script parses, and its Python prints one table of render and encode rows through the paths the GPU runs
(measure.encode_speed's child processes included)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from measure.peak_rss import run_measured

ROOT = Path(__file__).resolve().parents[1]
MiB = 2**20


def test_a_childs_peak_rss_is_its_own_not_its_parents(tmp_path):
    held = b"\x01" * (600 * MiB)  # resident in this process when the child is forked
    script = tmp_path / "allocate.py"
    script.write_text("import sys\nblock = b'\\x01' * (200 * 2**20)\nprint(len(block))\nsys.exit(3)\n")
    run = run_measured([str(script)])
    assert (run.returncode, run.stdout) == (3, f"{200 * MiB}\n") and len(held) == 600 * MiB
    assert 200 * MiB < run.peak_rss_bytes < 300 * MiB


def test_the_script_parses():
    subprocess.run(["bash", "-n", str(ROOT / "measure" / "gpu_check.sh")], check=True)


def test_the_check_prints_one_table_on_cpu():
    done = subprocess.run([sys.executable, "-m", "measure.gpu_check", "--device", "cpu", "--render-device", "cpu",
                           "--resolution", "48", "--presets", "preview", "--render-images", "1", "--models",
                           "tiny-clip-vit-p8-32", "--sizes", "96", "--covers", "auto", "--images", "1", "--peak-tflops",
                           "0.05"], capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("device cpu") and lines[0].endswith("peak 0.05 TFLOP/s (given)")
    assert lines[2].split() == ["part", "setting", "s/img", "img/s", "windows/s", "share", "of", "floor"]
    number = r"\s+([0-9.e+-]+)"
    render = re.fullmatch(r"\s*render\s+preview, 48 px, cpu, 1 images" + number + r"\s+-\s+-\s+-", lines[3])
    encode = re.fullmatch(r"\s*encode\s+tiny-clip-vit-p8-32, cc@auto=3, 96 px" + number * 3 + r"\s+([0-9.]+)%", lines[4])
    assert render and float(render[1]) > 0 and len(lines) == 5
    seconds, rate, windows, share = map(float, encode.groups())
    assert abs(seconds * rate - 1) < 0.01 and abs(windows / rate - 14) < 0.01 and share > 0  # cc@3: 14 windows


def test_render_phases_add_up_to_the_image():
    done = subprocess.run([sys.executable, "-m", "measure.render_phases", "--size", "64", "--scenes", "1", "--family",
                           "aerial"], capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [line.split(" | ") for line in done.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    phases = {r[0][2:]: (float(r[1]), float(r[2].rstrip("% |"))) for r in rows[1:-1]}
    assert list(phases) == ["scene build", "path tracing", "denoising", "PNG write", "id pass", "annotation"]
    image = float(rows[-1][1].strip("*"))
    rounding = 0.005 * (len(phases) + 1) + 1e-9  # seven figures, each printed to 0.01 s
    assert abs(sum(s for s, _ in phases.values()) - image) <= rounding
    assert abs(sum(p for _, p in phases.values()) - 100) <= 0.05 * len(phases) + 1e-9  # each printed to 0.1%
    assert re.search(r"starting a Blender worker \(once per chunk of scenes\): [0-9.]+ s", done.stdout)


def test_render_knobs_compare_each_knob_with_the_preset():
    done = subprocess.run([sys.executable, "-m", "measure.render_knobs", "--size", "64", "--scenes", "1"],
                          capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = {r[0][2:]: r[1:] for r in (line.split(" | ") for line in done.stdout.splitlines()
                                     if line.startswith("| ") and "---" not in line)}  # fmt: skip
    assert rows["preset"][2:] == ["1.00x", "identical |"]  # the same seed renders the same pixels
    assert rows["no auto tile"][3] == "identical |"  # tiling does not change what a pixel samples
    assert float(rows["no denoising"][3].split(" dB")[0]) < 40  # one sample undenoised is visibly noisy
    assert all(float(r[1]) > 0 for r in list(rows.values())[1:])
