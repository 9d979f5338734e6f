"""The Ray cluster that rendering and feature extraction run on, and their shared command-line options.

Imports neither torch nor bpy, and ray only inside functions. Ray work gets PYTHONPATH = this
project's folder: every node needs this checkout at the same path and its Python environment.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import socket
from dataclasses import dataclass
from pathlib import Path

import click

from .errors import ToolkitError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONNECT_TIMEOUT_S = 10


class ClusterError(ToolkitError, RuntimeError):
    """No Ray cluster answers, or Ray cannot start."""


@dataclass(frozen=True)
class RayCluster:
    """A Ray cluster to run work on: HOST:PORT, or None ($RAY_ADDRESS, else a new one-machine cluster)."""

    address: str | None = None


def connect(address: str | None) -> bool:
    """Connect this process to the Ray cluster at `address` (see RayCluster), with this project
    importable by its workers, unless it is connected already; True when this call connected (the
    caller then calls ray.shutdown())."""
    import ray

    if ray.is_initialized():
        return False
    host, _, port = (address or "").rpartition(":")
    if host and port.isdigit():  # HOST:PORT: fail at once, not after minutes of retries
        try:
            socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as e:
            raise ClusterError(f"no Ray cluster answers at {address}: {e.strerror or e}") from None
    try:
        ray.init(
            address=address, runtime_env={"env_vars": {"PYTHONPATH": str(PROJECT_ROOT)}},
            logging_level=logging.ERROR, log_to_driver=False, include_dashboard=False,
        )
    except Exception as e:  # noqa: BLE001 - Ray raises several kinds; the run needs only one line
        raise ClusterError(f"cannot start or reach Ray at {address or 'a new local cluster'}: {str(e).splitlines()[0]}") from None
    return True


@contextlib.contextmanager
def session(cluster: RayCluster | None):
    """Connected to `cluster` while inside (nothing without one), so that all Ray work of one command
    shares one connection and an unreachable cluster fails before anything is written."""
    owner = connect(cluster.address) if cluster is not None else False
    try:
        yield
    finally:
        if owner:
            import ray

            ray.shutdown()


def executor_options(ray_work: str):
    """Click options --executor local|ray and --ray-address of a command, which gets them as one
    argument `cluster`: a RayCluster, or None to run on this machine. `ray_work` says what runs on Ray.
    With Ray the command runs inside `session(cluster)`; a ClusterError is its one-line error."""

    def decorate(command):
        @click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                      help=f"where the work runs: this machine, or {ray_work}")
        @click.option("--ray-address", default=None,
                      help="address of the Ray cluster (HEAD_IP:6379); default: $RAY_ADDRESS, else a new one-machine cluster for this run")
        @functools.wraps(command)
        def run(*args, executor: str, ray_address: str | None, **kwargs):
            cluster = RayCluster(ray_address) if executor == "ray" else None
            try:
                with session(cluster):
                    return command(*args, cluster=cluster, **kwargs)
            except ClusterError as e:
                raise click.ClickException(str(e)) from None

        return run

    return decorate
