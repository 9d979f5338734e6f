"""scripts/install_weights.sh refuses a missing file with one line and installs nothing: no
temporary file and none of the other files named with it is left in detailclip/weights/."""

import subprocess
from pathlib import Path

from conftest import ROOT

WEIGHTS = ROOT / "detailclip" / "weights"


def _install(*files: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / "scripts" / "install_weights.sh"), *map(str, files)],
                          capture_output=True, text=True)


def test_a_missing_file_installs_nothing(tmp_path):
    before = sorted(p.name for p in WEIGHTS.iterdir())
    present = tmp_path / "zz-install-test-weights.pt"
    present.write_bytes(b"weights")
    missing = tmp_path / "absent.pt"
    for files in ((missing,), (present, missing)):
        proc = _install(*files)
        assert proc.returncode == 1
        assert proc.stderr == f"error: no weight file {missing}\n"
        assert sorted(p.name for p in WEIGHTS.iterdir()) == before
