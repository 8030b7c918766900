"""Child processes of the platform's launchers: they die with their parent, stop in order.

A broker or service started by `gvn up`, the tests or a benchmark must not outlive it, even
when the parent is killed with SIGKILL and has no chance to clean up: the kernel sends each
child SIGTERM when its parent dies (Linux's parent-death signal).
"""

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
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


def gone(process: psutil.Process) -> bool:
    """Nothing of it runs: exited, or a zombie its parent has not reaped yet."""
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(waited: Iterable[psutil.Process], *, timeout: float) -> list[psutil.Process]:
    """Wait until none of them runs; the ones still running after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    left = list(waited)
    while (left := [process for process in left if not gone(process)]) \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def named_in(pid_file: Path, *, running: Callable[[list[str]], bool]) -> psutil.Process | None:
    """The live process whose pid starts `pid_file`, if its command line passes `running`
    (the pid in a file left by a killed process may be another program's by now)."""
    with contextlib.suppress(OSError, ValueError, IndexError, psutil.Error):
        process = psutil.Process(int(pid_file.read_text().split()[0]))
        if not gone(process) and running(process.cmdline()):
            return process
    return None


def listeners(host: str = "127.0.0.1") -> dict[int, int]:
    """Local TCP ports listened on at `host` (or every interface): port -> pid (0: hidden)."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return {}
    return {conn.laddr.port: conn.pid or 0 for conn in connections
            if conn.status == psutil.CONN_LISTEN and conn.laddr
            and conn.laddr.ip in (host, "0.0.0.0", "::", f"::ffff:{host}")}


def command_line(pid: int) -> str:
    """A process's command line, shortened for a message ('?' when it cannot be read)."""
    try:
        return " ".join(psutil.Process(pid).cmdline())[:120]
    except psutil.Error:
        return "?"
