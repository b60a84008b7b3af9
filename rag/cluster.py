"""Joining a Ray cluster for `rag.distributed`, or starting one on this machine.

ADDRESS is ``auto`` (``$RAY_ADDRESS``, else a cluster started on this machine with ``ray
start``), ``local[:N]`` (start a cluster of N nodes here, bound to 127.0.0.1, for this run),
or ``HOST:PORT`` (a head node's GCS address). Ray is imported only once a cluster is joined.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import socket
import sys
from collections.abc import Iterator
from typing import Any

from .errors import BackendUnavailable, InvalidOption, RagError
from .update import Progress

log = logging.getLogger(__name__)

INSTALL = 'pip install "kornews-rag[ray]"'
ADDRESS_FORMS = ("auto", "local", "local:N", "HOST:PORT")
# A local cluster's object store per node: small, Ray spills to disk beyond it.
LOCAL_OBJECT_STORE = 200 * 2**20
CONNECT_TIMEOUT = 5.0
# Seconds a local cluster's nodes may take to join (Ray's own wait is 30 s).
LOCAL_START_TIMEOUT = 120.0
_ADDRESS = re.compile(r"^(?P<host>[\w.-]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})$")


def check(address: str) -> tuple[str, str]:
    """Parse ``address`` and make sure Ray is installed, before anything is written.

    Returns:
        ``("auto", "")``, ``("local", "N")`` or ``("remote", "HOST:PORT")``.

    Raises:
        InvalidOption: ``address`` has none of the `ADDRESS_FORMS`.
        BackendUnavailable: Ray is not installed.
    """
    kind, arg = _parse(address)
    import importlib.util

    if importlib.util.find_spec("ray") is None:  # (a submodule's spec would import ray)
        raise BackendUnavailable(f"indexing on Ray needs the ray extra: {INSTALL}")
    return kind, arg


@contextlib.contextmanager
def join(address: str, progress: Progress | None = None) -> Iterator[tuple[int, int]]:
    """Join the Ray cluster at ``address`` (or start a local one) for the block; yields its
    number of nodes and of CPUs.

    A local cluster is shut down at the end through its own handle; a cluster joined is only
    disconnected from. Ray already connected in this process is used as it is.

    Raises:
        InvalidOption: A malformed address.
        BackendUnavailable: Ray is not installed.
        RagError: The cluster cannot be reached or refuses the connection.
    """
    kind, arg = check(address)
    gcs = arg if kind == "remote" else os.environ.get("RAY_ADDRESS", "")
    if kind != "local" and gcs:
        _reachable(gcs)
    if progress:
        progress("cluster", 0, 1)
    with contextlib.ExitStack() as stack:
        if kind == "local":
            stack.enter_context(_loopback_only())
            stack.enter_context(_token_auth())
            gcs = stack.enter_context(_local_cluster(int(arg)))
        elif gcs and _is_loopback(gcs):
            stack.enter_context(_loopback_only())
        # Without $RAY_ADDRESS, "auto" is Ray's: a cluster started here with `ray start`.
        stack.enter_context(_ray_session(gcs or "auto", address))
        import ray

        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        cpus = int(ray.cluster_resources().get("CPU", 0))
        if cpus < 1:
            raise RagError(f"the Ray cluster at {address} has no CPU to run on")
        log.info("ray: %d nodes, %d CPUs at %s", nodes, cpus, address)
        if progress:
            progress("cluster", 1, 1)
        yield nodes, cpus


def _parse(address: str) -> tuple[str, str]:
    if address == "auto":
        return "auto", ""
    if address == "local":
        return "local", "1"
    match = re.fullmatch(r"local:(\d{1,3})", address)
    if match and 1 <= int(match[1]) <= 64:
        return "local", match[1]
    match = _ADDRESS.fullmatch(address)
    if match and not address.startswith("local:") and 0 < int(match["port"]) < 65536:
        return "remote", address
    raise InvalidOption("Ray address", address, ADDRESS_FORMS)


def _reachable(address: str) -> None:
    """Fail in seconds on an address nothing listens at (Ray itself retries for minutes)."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT):
            pass
    except (OSError, ValueError) as e:
        reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
        raise RagError(f"cannot reach a Ray cluster at {address}: {reason}") from None


def _is_loopback(address: str) -> bool:
    host = address.rpartition(":")[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


@contextlib.contextmanager
def _ray_session(gcs: str, address: str) -> Iterator[None]:
    """Connected to the cluster at ``gcs`` for the block, unless Ray already is."""
    import ray
    import ray.data

    joined = not ray.is_initialized()
    if joined:
        try:
            ray.init(address=gcs, log_to_driver=False, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise RagError(f"cannot join the Ray cluster at {address}: {first}") from None
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    ray.data.DataContext.get_current().enable_progress_bars = False  # rag reports progress
    try:
        yield
    finally:
        if joined:
            ray.shutdown()


@contextlib.contextmanager
def _local_cluster(nodes: int) -> Iterator[str]:
    """N nodes on this machine, sharing its CPUs, bound to 127.0.0.1."""
    from ray.cluster_utils import Cluster as RayCluster

    cpus = max(1, (os.cpu_count() or 1) // nodes)
    args: dict[str, Any] = {
        "num_cpus": cpus,
        "object_store_memory": LOCAL_OBJECT_STORE,
        "node_ip_address": "127.0.0.1",
        "include_dashboard": False,
    }
    cluster = RayCluster(shutdown_at_exit=True)
    try:
        try:
            for _ in range(nodes):
                try:
                    cluster.add_node(**args)
                except TimeoutError:  # Ray waits 30 s for a node, too little on a busy machine
                    cluster.wait_for_nodes(timeout=LOCAL_START_TIMEOUT)
            cluster.wait_for_nodes(timeout=LOCAL_START_TIMEOUT)
        except Exception as e:  # Ray raises what its subprocesses and GCS calls raise
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise RagError(f"cannot start a local Ray cluster of {nodes} nodes: {first}") from e
        yield str(cluster.address)
    finally:
        cluster.shutdown()


@contextlib.contextmanager
def _token_auth() -> Iterator[None]:
    """Token authentication with a fresh token, in this process's environment (which the
    local cluster's processes inherit) and nowhere on disk; the old environment after."""
    with _environ(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32)):
        reload_ray_config()
        try:
            yield
        finally:
            reload_ray_config()


def reload_ray_config() -> None:
    """Make Ray, if imported already, read its settings from the environment again (as its
    own ``ray.init`` does when it turns token authentication on)."""
    raylet = sys.modules.get("ray._raylet")
    if raylet is not None:
        raylet.Config.initialize("")
        raylet.AuthenticationTokenLoader.instance().reset_cache()


@contextlib.contextmanager
def _loopback_only() -> Iterator[None]:
    """Make Ray keep 127.0.0.1 as this machine's address.

    Ray replaces a loopback address given to ``ray.init`` with the machine's network address
    (ray-project/ray#59110), where a cluster bound to 127.0.0.1 does not listen. Its switch for
    single-machine clusters turns that off; it is read when Ray is imported, so it is also set
    on the imported constant.
    """
    with _environ(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0"):
        module = sys.modules.get("ray._private.ray_constants")
        constants = vars(module) if module is not None else {}
        before = constants.get("ENABLE_RAY_CLUSTER")
        if module is not None:
            constants["ENABLE_RAY_CLUSTER"] = False
        try:
            yield
        finally:
            if module is not None:
                constants["ENABLE_RAY_CLUSTER"] = before


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
