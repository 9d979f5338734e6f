"""The Ray cluster that rendering and feature extraction run on (the commands' --executor and
--ray-address options: cli_commands.options.executor_options).

Imports neither torch nor bpy, and ray only inside functions. Ray work gets PYTHONPATH = this
project's folder: every node needs this checkout at the same path and its Python environment.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from dataclasses import dataclass
from pathlib import Path

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
    caller then calls ray.shutdown()). ClusterError (one line) when Ray is not installed."""
    try:
        import ray
    except ImportError:
        raise ClusterError("Ray is not installed: pip install 'clevr-ds[ray]'") from None
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
