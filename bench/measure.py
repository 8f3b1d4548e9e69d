"""Run one benchmarked command in its own process and measure its wall time and peak memory.

Shared by bench/run.py and bench/peers.py. Run as a script, this file is the small launcher
that starts the measured command (see `measure`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_POLL_S = 0.1


def python_path() -> str:
    """PYTHONPATH for the measured code: a temporary folder holding a `raster_clustering` link to
    this checkout, and scripts/ (the synthetic scene generator)."""
    parent = Path(tempfile.mkdtemp(prefix="raster_clustering_path_"))
    (parent / "raster_clustering").symlink_to(ROOT, target_is_directory=True)
    return os.pathsep.join([str(parent), str(ROOT / "scripts")])


def measure(label: str, code: str | list[str], *, timeout_s: float | None = None,
            check: bool = True) -> dict:
    """Run Python code (str) or a command (list) in a child process; wall time and peak RSS.

    Linux carries a process's peak RSS across fork and exec into its child, so a command started
    straight from the benchmark would report at least the benchmark's own peak. A small
    launcher (this file run as a script, ~10 MiB) starts the command instead and reports the
    command's own peak: that of the largest single process of its tree (wait4).

    Args:
        label: what is measured, for the log line and the row.
        code: Python source run by this interpreter, or a command line.
        timeout_s: kill the command (and everything it started) after this many seconds.
        check: exit the benchmark when the command fails or times out; otherwise return the row
            and let the caller record the failure.

    Returns:
        {"case", "seconds", "cpu_seconds", "peak_mib", "stdout", "stderr", "returncode",
        "timed_out"}; cpu_seconds (user + system, of the largest process's tree as wait4
        reports it) varies less than wall time on a shared machine.
    """
    command = [sys.executable, "-c", code] if isinstance(code, str) else code
    env = dict(os.environ, PYTHONPATH=python_path())
    with tempfile.TemporaryDirectory(prefix="measure_") as folder:
        report = Path(folder) / "report.json"
        launcher = [sys.executable, "-I", "-S", str(Path(__file__).resolve()),
                    "" if timeout_s is None else str(timeout_s), str(report), *command]
        completed = subprocess.run(launcher, env=env, capture_output=True, text=True)
        if not report.exists():
            raise SystemExit(f"The benchmark launcher failed for {label}:\n{completed.stderr}")
        result = json.loads(report.read_text())
    seconds, peak, timed_out = result["seconds"], result["maxrss_kib"] / 1024, result["timed_out"]
    cpu_seconds = result["cpu_seconds"]
    returncode = result["returncode"]
    if check and (timed_out or returncode != 0):
        reason = f"timed out after {seconds:.0f} s" if timed_out else f"exit {returncode}"
        raise SystemExit(f"{label} failed ({reason}):\n{completed.stdout}\n{completed.stderr}")
    state = "timed out" if timed_out else ("ok" if returncode == 0 else "FAILED")
    print(f"  {label}: {seconds:.1f} s (CPU {cpu_seconds:.1f} s), peak {peak:.0f} MiB ({state})",
          flush=True)
    return {"case": label, "seconds": seconds, "cpu_seconds": cpu_seconds, "peak_mib": peak,
            "stdout": completed.stdout,
            "stderr": completed.stderr, "returncode": returncode, "timed_out": timed_out}


def _launch(arguments: list[str]) -> int:
    """Launcher: `measure.py TIMEOUT_S|'' REPORT COMMAND...`; writes REPORT as JSON."""
    timeout_s = float(arguments[0]) if arguments[0] else None
    report, command = arguments[1], arguments[2:]
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.setsid()  # a process group of its own, so a timeout ends its children too
        try:
            os.execvp(command[0], command)
        except OSError as error:
            print(f"cannot start {command[0]}: {error}", file=sys.stderr, flush=True)
        os._exit(127)
    timed_out = False
    while True:
        # wait4 gives the command's own resource usage, peak memory included.
        done, status, usage = os.wait4(pid, 0 if timeout_s is None else os.WNOHANG)
        if done:
            break
        if time.perf_counter() - start > timeout_s:
            timed_out = True
            os.killpg(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            break
        time.sleep(_POLL_S)
    Path(report).write_text(json.dumps({
        "seconds": time.perf_counter() - start, "maxrss_kib": usage.ru_maxrss,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "returncode": os.waitstatus_to_exitcode(status), "timed_out": timed_out}))
    return 0


if __name__ == "__main__":
    sys.exit(_launch(sys.argv[1:]))
