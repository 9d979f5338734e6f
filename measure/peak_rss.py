"""Peak resident memory of a Python command line, run in a child process.

`run_measured(["cli.py", "encode", ...])` runs `python -m measure.peak_rss cli.py encode ...` (or `-m MODULE ...`):
this module runs the command in the child's own process and, when it ends, writes the child's VmHWM (the peak
RSS of its memory since its exec) to the file named by $PEAK_RSS_FILE. rusage's ru_maxrss would not do: it
keeps the peak of the parent's image that the child was forked from.
"""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

PEAK_FILE_ENV = "PEAK_RSS_FILE"


@dataclass(frozen=True)
class Measured:
    returncode: int
    stdout: str
    stderr: str
    peak_rss_bytes: int  # 0 when the command ended before it could be read


def run_measured(argv: Sequence[str], cwd: str | os.PathLike | None = None) -> Measured:
    """Run `python ARGV` to its end: its exit status, output and peak RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        peak_file = Path(tmp) / "peak"
        done = subprocess.run([sys.executable, "-m", "measure.peak_rss", *argv], capture_output=True, text=True,
                              cwd=cwd, env={**os.environ, PEAK_FILE_ENV: str(peak_file)})
        peak = int(peak_file.read_text()) if peak_file.is_file() else 0
    return Measured(done.returncode, done.stdout, done.stderr, peak)


def peak_rss_bytes() -> int:
    """This process's peak resident memory since its exec (VmHWM of /proc/self/status)."""
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def main(argv: list[str]) -> None:
    """Run `SCRIPT ARGS...` or `-m MODULE ARGS...` here as __main__, then write the peak RSS to $PEAK_RSS_FILE."""
    try:
        if argv[0] == "-m":
            sys.argv = argv[1:]
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv = argv
            runpy.run_path(argv[0], run_name="__main__")
    finally:
        Path(os.environ[PEAK_FILE_ENV]).write_text(str(peak_rss_bytes()))


if __name__ == "__main__":
    main(sys.argv[1:])
