"""Counting each video's frames, in worker processes, with a cache (``OUT/probe_cache.jsonl``).

Counting frames decodes every video once, so it runs in worker processes and
each result is appended to the cache as it arrives: a rerun, or a run after a
kill, reads again only the mp4s whose path, size or mtime changed.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from common.atomic import write_text_atomic
from common.parallel import map_chunks


PROBE_CACHE_NAME = "probe_cache.jsonl"


def decoder_name() -> str:
    """What counts the frames: a cached count from another decoder version is not reused."""
    import cv2

    return f"opencv {cv2.__version__} ffmpeg, frames as stored"  # earlier counts were of auto-rotated frames


def probe_videos(items: list[tuple[str, int, int]], root: str) -> list[dict[str, Any]]:
    """Probe records (the cache's lines) for ``(video_path, size, mtime_ns)`` items under ``root``."""
    from common.targets.video import VideoError, probe

    decoder = decoder_name()
    records = []
    for rel, size, mtime in items:
        record: dict[str, Any] = {"video_path": rel, "size": size, "mtime_ns": mtime, "decoder": decoder,
                                  "n_frames": None, "header_frames": None, "width": None, "height": None,
                                  "rotation": 0, "error": ""}
        try:
            info = probe(Path(root) / rel)
        except VideoError as exc:
            record["error"] = str(exc)
        else:
            record.update(n_frames=info.n_frames, header_frames=info.header_frames,
                          width=info.width, height=info.height, rotation=info.rotation)
        records.append(record)
    return records


def _cache_key(record: dict[str, Any]) -> tuple:
    return record["video_path"], record["size"], record["mtime_ns"], record["decoder"]


def read_probe_cache(path: Path) -> dict[tuple, dict[str, Any]]:
    """The cache's records by (video_path, size, mtime_ns, decoder); a line cut by a kill is ignored."""
    records: dict[tuple, dict[str, Any]] = {}
    if not path.exists():
        return records
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                record = json.loads(line)
                records[_cache_key(record)] = record
            except (ValueError, KeyError, TypeError):
                continue
    return records


def file_stat(root: Path, rel: str | None) -> tuple[int, int] | None:
    if not isinstance(rel, str):
        return None
    try:
        st = os.stat(root / rel)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _chunks(items: list[tuple[str, int, int]], size: int) -> Iterator[list[tuple[str, int, int]]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def probe_all(videos: pd.DataFrame, root: Path, out: Path, workers: int, chunk_size: int,
              progress: bool) -> tuple[dict[str, dict[str, Any]], Counter]:
    """Probe record per video_path (reused from the cache where the mp4 is unchanged) and counts."""
    cache_path = out / PROBE_CACHE_NAME
    cached = read_probe_cache(cache_path)
    decoder = decoder_name()
    records: dict[str, dict[str, Any]] = {}
    todo: list[tuple[str, int, int]] = []
    counts: Counter = Counter()
    for rel in dict.fromkeys(videos["video_path"].dropna().astype(str)):
        st = file_stat(root, rel)
        if st is None:
            records[rel] = {"video_path": rel, "n_frames": None, "header_frames": None, "width": None,
                            "height": None, "error": f"{root / rel}: no such file", "size": None, "mtime_ns": None,
                            "missing": True}
            counts["missing"] += 1
            continue
        hit = cached.get((rel, st[0], st[1], decoder))
        if hit is not None:
            records[rel] = hit
            counts["reused"] += 1
        else:
            todo.append((rel, st[0], st[1]))
    with open(cache_path, "a", encoding="utf-8") as journal:
        for part in map_chunks(probe_videos, _chunks(todo, chunk_size), str(root), workers=workers,
                               total=len(todo), desc="clips", unit="video", progress=progress):
            for record in part:
                records[record["video_path"]] = record
                journal.write(json.dumps(record, ensure_ascii=False) + "\n")
            journal.flush()
            counts["probed"] += len(part)
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records.values() if r.get("decoder"))
    write_text_atomic(cache_path, lines)  # compacted: only this manifest's current files
    return records, counts
