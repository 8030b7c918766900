"""Child processes of the platform's launchers: they die with their parent, stop in order.

A broker or service started by `gvn up`, the tests or a benchmark must not outlive it, even
when the parent is killed with SIGKILL and has no chance to clean up: the kernel sends each
child SIGTERM when its parent dies (Linux's parent-death signal).
"""

import ctypes
import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

import psutil

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def spawn(args: Sequence[str], *, log_file: Path | None = None,
          env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start a child that gets SIGTERM when this process dies; output appended to log_file.

    Call it from the main thread: the signal follows the thread that forked, not the process.
    """
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115 - child owns it
    try:
        return subprocess.Popen(list(args), stdout=out, stderr=subprocess.STDOUT, env=env,
                                cwd=cwd, preexec_fn=_die_with_parent)  # noqa: PLW1509
    finally:
        if log_file:
            out.close()


def stop(process: subprocess.Popen[bytes] | None, *, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def kill(process: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL, as a crash would: no clean-up in the child."""
    if process is not None and process.poll() is None:
        process.kill()
        process.wait()


def port_holder(port: int, host: str = "127.0.0.1") -> str | None:
    """Who listens on a local TCP port, as 'pid 123 (python3 -m shared.cli serve crm)'."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        connections = []
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port \
                and conn.laddr.ip in (host, "0.0.0.0", "::", f"::ffff:{host}"):
            if conn.pid is None:
                return "another user's process"
            try:
                command = " ".join(psutil.Process(conn.pid).cmdline())[:120]
            except psutil.Error:
                command = "?"
            return f"pid {conn.pid} ({command})"
    return None
