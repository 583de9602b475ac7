"""Servers started on this machine's loopback for a while: moto's S3 server, mosquitto, and friends.

One launcher for the tests (``tests/parts.py``), the demo and the fault harness: a free port on
127.0.0.1, the process started so that it dies with its parent, a wait until it listens (or a
clear error when it exits first), and a stop that terminates, then kills.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from stedi.tools import die_with_parent


class ServerError(RuntimeError):
    """A local server exited or did not listen in time."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 20.0) -> None:
    """Until something accepts connections on 127.0.0.1:``port``; fails early when ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServerError(f"server exited with status {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise ServerError(f"nothing listening on 127.0.0.1:{port} after {timeout:.0f}s")


class LocalServer:
    """A subprocess serving on a loopback port, listening when the constructor returns.

    It runs in a session of its own (a Ctrl-C in the terminal reaches the caller, which then
    stops it in order) and dies with this process even when this one is SIGKILLed.
    """

    def __init__(self, argv: list[str], port: int, *, env: dict[str, str] | None = None, log: Path | None = None,
                 timeout: float = 30.0):
        self.port = port
        self.log_path = log
        self._out = open(log, "wb") if log else None  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, env=env, stdout=self._out or subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                     preexec_fn=die_with_parent(), start_new_session=True)
        try:
            wait_for_port(port, self.proc, timeout)
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._out is not None:
            self._out.close()


def start_moto(log: Path | None = None) -> LocalServer:
    """moto's S3 (and every other AWS service) server, in server mode, on a free loopback port."""
    port = free_port()
    return LocalServer([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], port, log=log)


#: What boto3 reads from the environment that could point it elsewhere than a local stand-in.
_AWS_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ENDPOINT_URL",
             "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_PROFILE")


@contextlib.contextmanager
def aws_environment(endpoint: str, credentials: dict[str, str]) -> Iterator[None]:
    """boto3 in this process pointed at a local stand-in of AWS (``endpoint``, e.g. moto's server)
    with ``credentials`` (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and a region); the environment
    is as it was afterwards.  A session token, profile or S3-only endpoint of the real account is
    taken away meanwhile: boto3 would prefer it."""
    saved = {k: os.environ.get(k) for k in _AWS_KEYS}
    for k in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL_S3"):
        os.environ.pop(k, None)
    os.environ.update(credentials)
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
