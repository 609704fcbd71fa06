"""What produced a result: file hashes, code and library versions, machine, times.

SHA-256 of manifests and weights (GBs) is streamed in 8 MiB blocks and cached
by (absolute path, size, mtime_ns), in memory and in a small JSON file under
``$NIA_CACHE_DIR`` (default ``~/.cache/nia-eye-validation``), so a rerun
does not hash again. A file that changed gets a new key; a cache that cannot
be written (read-only container) is simply not kept.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from common import __version__
from common.atomic import write_text_atomic

_BLOCK = 8 << 20
_LIBRARIES = ("torch", "torchvision", "cv2", "numpy", "pandas", "pyarrow")
_memory_cache: dict[str, str] = {}


def utc_now() -> str:
    """Current UTC time as ISO 8601 with seconds, e.g. '2024-05-01T12:00:00+00:00'."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def sha256_file(path: Path | str) -> str:
    """Hex SHA-256 of a file, streamed, cached by path + size + mtime."""
    resolved = Path(path).resolve()
    stat = resolved.stat()  # FileNotFoundError names the path
    key = f"{resolved}|{stat.st_size}|{stat.st_mtime_ns}"
    if key in _memory_cache:
        return _memory_cache[key]
    disk = _load_disk_cache()
    if key in disk:
        _memory_cache[key] = disk[key]
        return disk[key]
    digest = hashlib.sha256()
    with resolved.open("rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    value = digest.hexdigest()
    _memory_cache[key] = value
    _store_disk_cache(key, value)
    return value


def code_version() -> str:
    """``$NIA_CODE_VERSION`` (set by the Docker build), else ``git describe``, else the package version."""
    from_env = os.environ.get("NIA_CODE_VERSION", "").strip()
    if from_env:
        return from_env
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / ".git").exists():
        try:
            out = subprocess.run(
                ["git", "-C", str(checkout), "describe", "--always", "--dirty"],
                capture_output=True, text=True, timeout=20, check=True,
            )
            return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return __version__


def library_versions() -> dict[str, str | None]:
    """Versions of python and the numeric libraries; None for one not installed."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = str(importlib.import_module(name).__version__)
        except ImportError:
            versions[name] = None
    return versions


def device_name(device: Any = None) -> str:
    """CUDA device name for a CUDA device, else the CPU model."""
    if device is not None and str(device).startswith("cuda"):
        import torch

        index = torch.device(device).index
        return str(torch.cuda.get_device_name(index if index is not None else torch.cuda.current_device()))
    return cpu_model()


def cpu_model() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def collect_provenance(
    *,
    manifest_path: Path | str | None = None,
    weights_path: Path | str | None = None,
    device: Any = None,
    extra: dict[str, Any] | None = None,
    start_time: str | None = None,
) -> dict[str, Any]:
    """Provenance dict for metrics.json.

    Call it when the run starts: ``start_time`` defaults to now, ``end_time``
    is set to now here and again by ``write_results`` when the run ends.
    ``extra`` carries run facts such as the gaze-label derivation and the
    class list; its keys are merged at the top level.
    """
    provenance: dict[str, Any] = {
        "manifest_path": str(manifest_path) if manifest_path is not None else None,
        "manifest_sha256": sha256_file(manifest_path) if manifest_path is not None else None,
        "weights_path": str(weights_path) if weights_path is not None else None,
        "weights_sha256": sha256_file(weights_path) if weights_path is not None else None,
        "code_version": code_version(),
        "libraries": library_versions(),
        "device": str(device) if device is not None else "cpu",
        "device_name": device_name(device),
        "hostname": socket.gethostname(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "start_time": start_time or utc_now(),
        "end_time": utc_now(),
    }
    provenance.update(extra or {})
    return provenance


def _cache_file() -> Path:
    root = os.environ.get("NIA_CACHE_DIR") or Path.home() / ".cache" / "nia-eye-validation"
    return Path(root) / "sha256.json"


def _load_disk_cache() -> dict[str, str]:
    try:
        data = json.loads(_cache_file().read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _store_disk_cache(key: str, value: str) -> None:
    path = _cache_file()
    try:
        data = _load_disk_cache()
        data[key] = value
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(data, sort_keys=True))
    except OSError:
        pass  # read-only home (containers): the in-memory cache still works
