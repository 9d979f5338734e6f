"""scripts/shift_splits.sh (issue #28's shift splits): it parses, and refuses an unknown set in one line before
rendering anything."""

import subprocess

from conftest import ROOT

SCRIPT = ROOT / "scripts" / "shift_splits.sh"


def test_the_script_parses():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_an_unknown_set_is_refused_in_one_line(tmp_path):
    proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True,
                          env={"SET": "train", "PATH": "/usr/bin:/bin", "DATA": str(tmp_path / "data")})
    assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", "error: SET must be val or test, not train\n")
    assert not (tmp_path / "data").exists()
