"""What the reliability tests run in: commands in this process, read-only and full folders, processes.

* :func:`run_nia`, :func:`run_click` run a command exactly as its console
  entry point does (``common.cli.entry.run_entry_point``: exit code and the
  one ``error:`` line), in this process, so a case costs milliseconds.
* ``read_only_dir`` and ``full_dir`` are real: a read-only bind mount (root) or
  mode 0555 (others); a 64 KiB tmpfs (root only; skipped elsewhere).
* :func:`children_of`, :func:`alive` find the worker processes of a command
  and tell whether they outlived it (a zombie counts as dead).
"""
from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Outcome:
    """Exit code and what a command printed."""

    code: int
    out: str
    err: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("error:")]

    def lines_naming(self, text: str) -> list[str]:
        """stderr lines (progress bars aside) that contain ``text``."""
        return [line for line in re.split(r"[\r\n]+", self.err) if text in line]


def run_click(command: Any, args: list[Any]) -> Outcome:
    """A click command (``nia`` or an entry point's) under the suite's exit-code rule, in this process."""
    import io

    from common.cli.entry import run_entry_point

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exited:
        run_entry_point(lambda: command.main(args=[str(a) for a in args], prog_name="nia", standalone_mode=False))
    code = exited.value.code
    return Outcome(0 if code is None else int(code), out.getvalue(), err.getvalue())


def run_nia(*args: Any) -> Outcome:
    """``nia ARGS...`` in this process."""
    from common.cli import main

    return run_click(main, list(args))


def assert_one_error(outcome: Outcome, code: int, *parts: str) -> str:
    """Exactly one ``error:`` line, holding every one of ``parts``, no traceback, and exit ``code``."""
    assert outcome.code == code, (outcome.code, outcome.err[-2000:])
    assert "Traceback" not in outcome.err, outcome.err[-3000:]
    lines = outcome.error_lines
    assert len(lines) == 1, outcome.err[-2000:]
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


# --- folders that cannot be written ------------------------------------------------

def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """``folder`` (which must exist) made read-only for this process, then writable again."""
    if os.geteuid() != 0:
        mode = folder.stat().st_mode
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(mode)
        return
    if not (_mount("--bind", str(folder), str(folder)) and _mount("-o", "remount,bind,ro", str(folder))):
        subprocess.run(["umount", str(folder)], capture_output=True)
        pytest.skip("root without mount: no way to make a read-only folder here")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@contextlib.contextmanager
def full_disk(folder: Path, size_kib: int = 64) -> Iterator[Path]:
    """``folder`` becomes a tmpfs of ``size_kib`` KiB (a disk that fills up); needs root and mount."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not _mount("-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(folder)):
        pytest.skip("a full disk needs a tmpfs mount (root): not available here")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill(folder: Path, leave: int = 0) -> None:
    """Fill the file system of ``folder`` until at most ``leave`` bytes are free."""
    import shutil

    n = 0
    while shutil.disk_usage(folder).free > leave:
        try:
            (folder / f".filler{n}").write_bytes(b"\0" * max(1024, shutil.disk_usage(folder).free - leave))
        except OSError:
            break
        n += 1


# --- processes -----------------------------------------------------------------------

def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # after "pid (comm) "


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def children_of(pid: int) -> list[int]:
    """Every living descendant of ``pid``."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                fields = _stat_fields(int(entry.name))
                if fields is not None and int(fields[1]) == parent and fields[0] != "Z":
                    found.append(int(entry.name))
                    todo.append(int(entry.name))
    return found


def wait_for(condition: Callable[[], bool], timeout: float, what: str, process: subprocess.Popen | None = None,
             every: float = 0.02) -> None:
    """Poll ``condition`` until true; fail naming ``what`` (and the process's output if it ended)."""
    end = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            out, err = process.communicate()
            raise AssertionError(f"the process ended ({process.returncode}) before {what}: {err[-2000:]}")
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def kill_hard(process: subprocess.Popen) -> list[int]:
    """``kill -9`` the process; its descendants as they were just before."""
    workers = children_of(process.pid)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return workers


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1"}
