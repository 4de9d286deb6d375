"""Processes the harness starts, and what /proc says about them.

Every process is started in its own session and stopped by its PID (SIGTERM, then SIGKILL after a
grace period): the harness never signals anything it did not start. CPU time is utime + stime of
the whole process (all threads, live and exited) from /proc/PID/stat; peak memory is VmHWM (the
resident set's high-water mark) from /proc/PID/status.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")

# Every process started and not yet stopped, so an interrupted run still cleans up.
_LIVE: dict[int, "Proc"] = {}
_LIVE_LOCK = threading.Lock()


def free_port() -> int:
    """A loopback port that is free, and that the kernel will not hand out again for a minute.

    A port only bound and released can come back from the next bind to port 0, of this process or
    another (the Temporal dev server picks its internal ports that way). So a connection is made
    to it and closed from the listening side first: that side waits in TIME_WAIT (60 s on Linux),
    which keeps port-0 binds off the port, while a listener with SO_REUSEADDR (asyncio, Go, Rust,
    PostgreSQL all set it) can still bind it. testkit's free_port does the same."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        # Without it here too, the TIME_WAIT socket would refuse even SO_REUSEADDR listeners.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            listening_side, _ = listener.accept()
            # The listening side closes first, so its socket is the one left in TIME_WAIT.
            listening_side.close()
            client.close()
        return port


@dataclass
class CpuSample:
    """CPU seconds a process has used so far (all threads), and when that was read."""

    cpu_s: float
    at: float


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of `pid`, in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # Field 2 (comm) may hold spaces and parentheses: split after its closing parenthesis.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLK_TCK


def status_kib(pid: int, key: str) -> int:
    """A `kB` line of /proc/PID/status, e.g. VmHWM or VmRSS."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


class Proc:
    """A child process with its output in a log file."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None, drop_env_prefix: str | None = None, user: str | None = None):
        self.name = name
        self.log_path = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log, "wb")
        # `drop_env_prefix`: keep the caller's own settings (e.g. EDGEFLOW_ENV) out of the run.
        full_env = {k: v for k, v in os.environ.items()
                    if not (drop_env_prefix and k.startswith(drop_env_prefix))}
        full_env.update(env or {})
        self.popen = subprocess.Popen(
            argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
            # `user`: run as that account (PostgreSQL refuses to run as root).
            user=user,
            group=user,
        )
        self.pid = self.popen.pid
        with _LIVE_LOCK:
            _LIVE[self.pid] = self

    def alive(self) -> bool:
        return self.popen.poll() is None

    def cpu(self) -> CpuSample:
        return CpuSample(cpu_seconds(self.pid), time.monotonic())

    def peak_rss_kib(self) -> int:
        return status_kib(self.pid, "VmHWM")

    def rss_kib(self) -> int:
        return status_kib(self.pid, "VmRSS")

    def memory_breakdown_mib(self) -> dict[str, float]:
        """The resident set now, split into anonymous memory (heap, stacks) and file-backed
        pages (mostly the executable and shared libraries), and the thread count."""
        out: dict[str, float] = {}
        for line in Path(f"/proc/{self.pid}/smaps_rollup").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("Rss", "Anonymous", "Shared_Clean", "Private_Clean", "Private_Dirty"):
                out[key.lower() + "_mib"] = int(rest.split()[0]) / 1024
        out["threads"] = status_kib(self.pid, "Threads")
        return out

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_for_log(self, needle: str, timeout_s: float) -> None:
        """Waits until the process prints `needle`; raises if it exits or time runs out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if needle in self.log_path.read_text(errors="replace"):
                return
            if not self.alive():
                raise RuntimeError(f"{self.name} exited ({self.popen.returncode}):\n{self.log_tail()}")
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} did not print {needle!r} in {timeout_s:.0f} s:\n{self.log_tail()}")

    def signal(self, sig: int) -> None:
        """Sends `sig` to this PID only (a no-op once it has exited)."""
        if self.alive():
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout_s: float) -> int | None:
        """Its exit code once it exits, or None if it is still running after `timeout_s`."""
        try:
            return self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace_s: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after `grace_s`; this PID only."""
        if self.alive():
            try:
                os.kill(self.pid, signal.SIGTERM)
                self.popen.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.popen.wait()
            except ProcessLookupError:
                pass
        with _LIVE_LOCK:
            _LIVE.pop(self.pid, None)
        self._log.close()
        return self.popen.returncode


def stop_all() -> None:
    """Stops every process this harness started and has not stopped yet."""
    with _LIVE_LOCK:
        procs = list(_LIVE.values())
    for p in procs:
        p.stop(grace_s=5.0)


class Sampler:
    """Reads a process's resident set every `every_s` seconds, to keep the largest value seen
    (a cross-check of VmHWM) and notice a death mid-run."""

    def __init__(self, proc: Proc, every_s: float = 0.25):
        self.proc = proc
        self.every_s = every_s
        self.max_rss_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.max_rss_kib = max(self.max_rss_kib, self.proc.rss_kib())
            except (OSError, KeyError):
                return
            self._stop.wait(self.every_s)
