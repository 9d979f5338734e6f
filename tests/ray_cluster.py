"""A real two-node Ray cluster on this machine for the Ray tests (test_renderer_ray.py, test_detailclip_ray.py).

The cluster is started with `ray start` (a head and a second node sharing one short temp dir, one
CPU each, token authentication with a token of this module's own) and stopped by killing exactly
the processes of these nodes and their Ray workers (`ray stop` would stop every Ray node on the
machine). Test modules import the `cluster` fixture (one cluster per module).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

# Token authentication with a token of this test's own, passed to the nodes and the CLI (nothing read
# from or written to ~/.ray, where a local `ray.init()` keeps its token).
RAY_ENV = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive_nodes(address: str) -> int:
    proc = subprocess.run([str(Path(sys.executable).with_name("ray")), "status", "--address", address], env=RAY_ENV, capture_output=True, text=True)
    active = proc.stdout.partition("Active:")[2].partition("Pending:")[0]
    return sum(line.strip().startswith("1 node_") for line in active.splitlines())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head node and a second node (one CPU each); yields (address, process group ids of the
    nodes, the nodes' TMPDIR, where tasks keep their scratch folders)."""
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # unix socket paths must stay short
    address, groups, node_tmp = f"127.0.0.1:{free_port()}", [], tmp_path_factory.mktemp("nodes")

    def start(*args: str) -> None:
        cmd = [str(Path(sys.executable).with_name("ray")), "start", "--num-cpus", "1", "--temp-dir", temp, *args]
        env = dict(RAY_ENV, TMPDIR=str(node_tmp))
        proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        groups.append(proc.pid)  # the node's daemons keep this process group
        output = proc.communicate(timeout=120)[0]
        assert proc.returncode == 0, output

    try:
        start("--head", "--port", address.split(":")[1], "--include-dashboard=false", "--disable-usage-stats")
        start("--address", address)
        deadline = time.time() + 60
        while _alive_nodes(address) < 2:
            assert time.time() < deadline, "the second node did not join"
            time.sleep(1)
        yield address, groups, node_tmp
    finally:
        for pid in cluster_processes(groups):  # Ray workers run in sessions of their own
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


def processes() -> list[tuple[int, int, str]]:
    """(pid, parent pid, command line) of every process."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            found.append((int(entry.name), ppid, cmdline))
        except (ValueError, OSError):
            continue
    return found


def cluster_processes(groups: list[int]) -> set[int]:
    """Pids of the nodes' daemons (process groups `groups`) and of their children (the Ray workers)."""
    procs = processes()
    daemons = {pid for pid, _, _ in procs if _group(pid) in groups}
    return daemons | {pid for pid, ppid, _ in procs if ppid in daemons}


def _group(pid: int) -> int | None:
    with contextlib.suppress(ProcessLookupError):
        return os.getpgid(pid)
    return None


def wait_for(what, timeout: float = 120):
    """what()'s first true value, polled every 50 ms."""
    deadline = time.time() + timeout
    while not (found := what()):
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)
    return found
