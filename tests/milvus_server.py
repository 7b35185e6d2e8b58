"""A real Milvus standalone server for the tests: the ``milvus-server`` of the PyPI
package ``milvus==2.3.5`` (the ``.[milvus]`` extra), with a fresh data folder.

That server listens on every interface, so it only ever starts inside a private
network namespace, where loopback is the only interface: `make test` runs pytest in
one (``unshare -n``). Healthy on :9091/healthz in a few seconds; stopped with SIGKILL
(its graceful stop takes over a minute), which loses nothing the tests need.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

PORT = 19530
HEALTH_PORT = 9091
HEALTH = f"http://127.0.0.1:{HEALTH_PORT}/healthz"
STARTUP_LIMIT = 180.0  # seconds; about 3 s here once unpacked, 10-20 s on a busy first run
# Shorter ticks than the defaults (200, 1000, 500 ms): a strongly consistent read waits
# for the next time tick, 0.2 s each with the default; loading a collection polls.
_FAST = [
    "--extra-config=proxy.timeTickInterval=20",
    "--extra-config=queryCoord.checkInterval=100",
    "--extra-config=queryCoord.distPullInterval=50",
]


def private_network() -> bool:
    """Whether loopback is this process's only network interface (a private network
    namespace): a server listening on all interfaces is then reachable from here only."""
    names = [name for _, name in socket.if_nameindex()]
    return bool(names) and all(name == "lo" for name in names)


def unpack(cache: Path) -> Path:
    """The server's binaries, unpacked once into `cache` (the package ships them
    lzma-compressed and unpacks them into every new data folder, 250 MB and seconds of
    CPU each time). A lock keeps two test sessions from unpacking at once."""
    import milvus

    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # skips every file whose checksum file already matches the packaged one
        milvus._initialize_data_files(str(cache))
    return cache / "bin"


@contextlib.contextmanager
def milvus_server(data: Path, binaries: Path | None = None) -> Iterator[str]:
    """Run a Milvus server on the fresh folder `data`; yields its URI. `binaries`:
    a folder `unpack` made (default: the server unpacks its own)."""
    if not private_network():
        raise RuntimeError(
            "the Milvus server listens on all interfaces: start it only inside a private "
            "network namespace (make test does: unshare -n)"
        )
    for port in (PORT, HEALTH_PORT):
        # milvus-server probes its ports this way and would quietly move its health
        # port to the next free one: a fresh namespace has them all free
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as err:
                raise RuntimeError(
                    f"port {port} is taken ({err}): another Milvus runs in this network "
                    f"namespace, or one stopped less than a minute ago (TIME_WAIT)"
                ) from err
    data.mkdir(parents=True, exist_ok=True)
    if binaries is not None:
        (data / "bin").symlink_to(binaries, target_is_directory=True)
    command = shutil.which("milvus-server", path=str(Path(sys.executable).parent))
    if command is None:
        raise RuntimeError("milvus-server is not installed: pip install -e '.[milvus]'")
    output = open(data / "milvus-server.log", "wb")  # noqa: SIM115 (closed below)
    started = time.perf_counter()
    # its own process group: the wrapper and the milvus binary it starts die together
    server = subprocess.Popen(
        [command, "--data", str(data), "--proxy-port", str(PORT), *_FAST],
        stdout=output,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_healthy(server, data, started)
        log.info("Milvus server healthy after %.1f s", time.perf_counter() - started)
        yield f"http://127.0.0.1:{PORT}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
        output.close()
        _wait_gone(server.pid)


def _wait_gone(group: int, limit: float = 30.0) -> None:
    """Wait until no process of the group is left: the milvus binary is the wrapper's
    child, and holds its ports until it is gone."""
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    log.warning("processes of Milvus's group %d still there after %.0f s", group, limit)


def _wait_healthy(server: subprocess.Popen[bytes], data: Path, started: float) -> None:
    while time.perf_counter() - started < STARTUP_LIMIT:
        if server.poll() is not None:
            raise RuntimeError(
                f"milvus-server exited with status {server.returncode}:\n{_tail(data)}"
            )
        try:
            with urllib.request.urlopen(HEALTH, timeout=2) as response:
                if b"OK" in response.read():
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"Milvus was not healthy after {STARTUP_LIMIT:.0f} s:\n{_tail(data)}")


def _tail(data: Path) -> str:
    logs = [*sorted((data / "logs").glob("*.log")), data / "milvus-server.log"]
    return "\n".join(
        f"--- {path.name}\n{path.read_text(errors='replace')[-2000:]}"
        for path in logs
        if path.exists()
    )
