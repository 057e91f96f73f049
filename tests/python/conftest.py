"""Fixtures for the client-compatibility suite.

Every test module gets one real ``millrace broker`` process (the binary from
``MILLRACE_BIN``, default ``target/debug/millrace`` under the repository
root) listening on a free loopback port with a throw-away data directory.
It is stopped with SIGTERM when the module is done, and must exit cleanly.

The clients under test are the ones users run: confluent-kafka (librdkafka),
kafka-python, and Debian's kcat binary.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

# Every wait in the suite is bounded by one of these.
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


def millrace_bin() -> Path:
    env = os.environ.get("MILLRACE_BIN")
    path = Path(env) if env else REPO_ROOT / "target" / "debug" / "millrace"
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not path.exists():
        raise RuntimeError(
            f"{path} not found: run `cargo build -p millrace` first or set MILLRACE_BIN"
        )
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A ``millrace broker`` process under test."""

    def __init__(self, overrides: dict[str, str] | None = None):
        self.data = Path(tempfile.mkdtemp(prefix="millrace-py-"))
        self.port = free_port()
        self.overrides = dict(overrides or {})
        self.proc: subprocess.Popen | None = None
        self.log_path = self.data / "broker.log"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_dir(self) -> Path:
        return self.data / "logs"

    def config_text(self) -> str:
        lines = [
            "node.id=1",
            f"listeners=PLAINTEXT://127.0.0.1:{self.port}",
            f"log.dirs={self.log_dir}",
            "default.replication.factor=1",
            "min.insync.replicas=1",
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "auto.create.topics.enable=true",
        ]
        # "{port}" in an override stands for the listener port.
        lines += [f"{k}={v.replace('{port}', str(self.port))}" for k, v in self.overrides.items()]
        return "\n".join(lines) + "\n"

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self) -> None:
        config = self.data / "server.properties"
        config.write_text(self.config_text())
        env = dict(os.environ)
        env["RUST_LOG"] = os.environ.get("MILLRACE_LOG", "info")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(millrace_bin()), "broker", "--config", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                pass
            code = self.proc.poll()
            if code is not None:
                raise RuntimeError(
                    f"broker exited with {code} before listening:\n{self.output()}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"broker not listening after {START_TIMEOUT_S}s:\n{self.output()}"
                )
            time.sleep(0.05)

    def wait_started(self, timeout: float = START_TIMEOUT_S) -> None:
        """Waits until the node logged the end of its start-up ("broker
        started" or "controller started"): its port accepts connections
        earlier, while a cluster node may still be registering, and a
        SIGTERM before the end of start-up ends it without a clean stop."""
        deadline = time.monotonic() + timeout
        while not re.search(r"(broker|controller) started", strip_ansi(self.output())):
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"node exited during start-up:\n{self.output()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"node not started after {timeout}s:\n{self.output()}")
            time.sleep(0.05)

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int:
        """SIGTERM, then wait; returns the exit code (kills after a timeout)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise RuntimeError(
                f"broker did not stop within {STOP_TIMEOUT_S}s of SIGTERM:\n{self.output()}"
            )

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self.data, ignore_errors=True)


def strip_ansi(line: str) -> str:
    """A log line without the colour codes tracing writes."""
    return re.sub(r"\x1b\[[0-9;]*m", "", line)


def quorum_leader(nodes) -> int:
    """The metadata quorum leader named by the newest 'leader elected' log
    line (highest term) of any of ``nodes`` that is running."""
    newest = None
    for node in nodes:
        if not node.is_running():
            continue
        for line in node.output().splitlines():
            m = re.search(r"metadata quorum leader elected leader=(\d+) term=(\d+)", strip_ansi(line))
            if m and (newest is None or int(m.group(2)) > newest[1]):
                newest = (int(m.group(1)), int(m.group(2)))
    assert newest is not None, "no node logged a quorum leader"
    return newest[0]


@pytest.fixture(scope="module")
def broker(request):
    """One running broker for the whole test module.

    A module may set ``BROKER_OVERRIDES = {key: value}`` for its broker
    (``{port}`` in a value is replaced by the listener port).
    """
    b = Broker(getattr(request.module, "BROKER_OVERRIDES", None))
    b.start()
    failed_before = request.session.testsfailed
    try:
        yield b
        assert b.is_running(), f"broker died during the module:\n{b.output()}"
        code = b.stop()
        assert code == 0, f"broker exited with {code} after SIGTERM:\n{b.output()}"
    except BaseException:
        failed_before = -1
        raise
    finally:
        if request.session.testsfailed != failed_before:
            tail = "\n".join(b.output().splitlines()[-300:])
            print(f"--- broker output ({b.bootstrap}, last 300 lines) ---\n{tail}")
        b.cleanup()


@pytest.fixture
def topic_name(request):
    """A fresh topic name per call: ``topic_name()`` or ``topic_name("suffix")``."""
    base = re.sub(r"[^A-Za-z0-9.-]+", "-", request.node.name.replace("_", "-")).strip("-")[:40]

    def make(suffix: str = "") -> str:
        name = f"{base}{'-' + suffix if suffix else ''}-{uuid.uuid4().hex[:8]}"
        return name

    return make


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """Drops each test's fixture values once it is torn down: pytest would keep
    them (module-scoped clients included) until the session ends, and a
    librdkafka client left behind keeps reconnecting to its stopped broker."""
    yield
    item.funcargs.clear()
