"""Observer-state clips for Former-DFER, read from a clip dataset (`nia clips`
output, see docs/architecture.md "Clip dataset") and the videos it indexes.

An item is 16 frames of one video: the frame numbers from `dfer.sampling`
(random inside the 8 segments in training, centred at test), read exactly
with `common.targets.video.read_frames` inside the clip's region, then
`dfer.transforms` (random-sized crop + flip in training, resize at test) to
uint8 `(T, 3, 112, 112)`. The division by 255 runs once per batch on the
device (`prepare_batch`), which also lays the frames out channels-last (the
network's convolutions run about twice as fast so on a CPU).

Random choices of an item are a function of (seed, epoch, index) alone, so
every DDP process and DataLoader worker draws the same ones, and a resumed
run draws what an uninterrupted one would.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from common.targets.clip_index import CLIP_INDEX_NAME, check_unchanged, read_clip_index, video_root
from common.targets.crop_rows import CropRows, require_subjects
from common.targets.video import VideoError, read_frames
from dfer.config import STATES, DFERConfig
from dfer.sampling import ShortClipError, sample_indices
from dfer.transforms import eval_transform, random_flip, train_transform

#: `nia clips` reasons -> the suite's skip reasons (common.verdicts.thresholds.SKIP_REASONS), all the data's.
CLIP_SKIP_REASONS = {"missing": "missing_video", "unreadable": "unreadable_video", "too_short": "too_short_video",
                     "no_state": "no_state_label", "invalid_row": "invalid_label"}
#: read at run time: a video that no longer decodes (it changed after `nia clips`)
UNREADABLE = "unreadable_video"
#: with a frame cache, clips of more than this many times the frames the model reads are read from the video
#: every time (a long video's resized frames would fill the memory)
CACHE_MAX_FACTOR = 4


def read_state_clips(clips_dir: str | Path, split: str, *, min_frames: int = 16,
                     videos: Path | None = None) -> CropRows:
    """The usable clips of `split`: one row per clip with `clip_id, subject, inst, state, target,
    n_frames, x0, y0, x1, y1, width, height, video_file` (absolute path), sorted by clip_id, and the clips set
    aside.

    Every clip of the split is a row or counted under a skip reason: `nia clips`'
    reasons (`CLIP_SKIP_REASONS`), `too_short_video` for a clip under
    `min_frames` (an index made with a smaller `--min-frames`), and
    `missing_video` for an mp4 that is not there any more. An mp4 whose
    size or mtime changed since `nia clips` is refused (ClipIndexError). `videos`
    overrides where the mp4s live (default: the index's `nia.root`).
    """
    clips = read_clip_index(clips_dir, split)
    skipped = {CLIP_SKIP_REASONS[reason]: n for reason, n in clips.skipped.items()}
    rows = clips.rows
    require_subjects(rows, Path(clips_dir) / CLIP_INDEX_NAME, "clip_id")
    if rows.empty and not skipped:
        raise ValueError(f"{Path(clips_dir) / 'index.parquet'}: no clips in split {split!r}")
    if rows.empty:
        return CropRows(_row_frame(rows, Path(clips_dir)), skipped)
    root = video_root(clips_dir, videos)
    check_unchanged(rows, root, clips_dir)
    rows = _row_frame(rows, root)
    short = rows["n_frames"].to_numpy() < min_frames
    exists = np.array([Path(p).is_file() for p in rows["video_file"]], dtype=bool)
    missing = ~short & ~exists
    for reason, bad in (("too_short_video", short), ("missing_video", missing)):
        if bad.any():
            skipped[reason] = skipped.get(reason, 0) + int(bad.sum())
    return CropRows(rows[~short & ~missing].reset_index(drop=True), skipped)


def _row_frame(rows: pd.DataFrame, root: Path) -> pd.DataFrame:
    targets = rows["state"].map({s: i for i, s in enumerate(STATES)})
    if targets.isna().any():
        bad = rows.loc[targets.isna(), "state"].iloc[0]
        raise ValueError(f"clip index: state {bad!r}, expected one of {', '.join(STATES)}")
    table = pd.DataFrame({
        "clip_id": rows["clip_id"].astype(str), "subject": rows["subject"].astype(object),
        "inst": rows["inst"].astype(object), "state": rows["state"].astype(str),
        "target": targets.astype(np.int64),
        "n_frames": rows["n_frames"].astype(np.int64),
        **{c: rows[c].astype(np.int64) for c in ("x0", "y0", "x1", "y1")},
        **{c: rows[c] for c in ("width", "height") if c in rows.columns},  # the frame size (region variants)
        "video_file": [str(root / p) for p in rows["video_path"]],
    })
    return table.sort_values("clip_id", kind="stable").reset_index(drop=True)


class StateClips(Dataset):
    """Item i -> (uint8 clip (T, 3, S, S), target int64, i, ok).

    `ok` is False when the video could not be read as the index says (the
    clip is then zeros): the caller counts it. `train=True` draws the frame
    numbers and the crop/flip from `numpy.random.default_rng([seed, epoch, i])`.

    `cache=True` keeps every frame of a clip, read once and resized, in
    memory, and later epochs index and flip those: the same pixels as reading
    them again, since frames are read exactly and resized one by one. It is
    used only where no random crop is drawn (evaluation, or training with
    `random_crop=False`), for clips of up to `CACHE_MAX_FACTOR` x `frames`
    frames, and pays off only in the process that keeps the dataset (no
    DataLoader workers, whose copies end with each epoch).
    """

    def __init__(self, rows: pd.DataFrame, config: DFERConfig, *, train: bool, cache: bool = False) -> None:
        self.paths = list(rows["video_file"])
        self.n_frames = rows["n_frames"].to_numpy(dtype=np.int64)
        self.regions = rows[["x0", "y0", "x1", "y1"]].to_numpy(dtype=np.int64)
        self.targets = torch.as_tensor(rows["target"].to_numpy(dtype=np.int64))
        self.config, self.train = config, train
        self.seed, self.epoch = config.seed, 0
        self.crop = train and config.random_crop
        self.cache: dict[int, torch.Tensor] | None = {} if cache and not self.crop else None

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose random frames and crops to draw (before building the epoch's iterator)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.paths)

    def rng(self, index: int) -> np.random.Generator | None:
        return np.random.default_rng([self.seed, self.epoch, index]) if self.train else None

    def frame_indices(self, index: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """The frame numbers item `index` reads (in training: those of this epoch, drawn from `rng`)."""
        c = self.config
        return sample_indices(int(self.n_frames[index]), train=self.train, rng=rng, segments=c.segments,
                              frames_per_segment=c.frames_per_segment, pad=c.pad_short, name=self.paths[index])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int, bool]:
        size = self.config.input_size
        rng = self.rng(index)
        try:
            indices = self.frame_indices(index, rng)
            if self.cache is not None and self.n_frames[index] <= CACHE_MAX_FACTOR * self.config.frames:
                clip = self._all_frames(index)[torch.from_numpy(indices)]
                return (clip if rng is None else random_flip(clip, rng)), self.targets[index], index, True
            frames = read_frames(self.paths[index], indices, region=self._region(index))
        except (VideoError, ShortClipError):
            return torch.zeros(self.config.frames, 3, size, size, dtype=torch.uint8), self.targets[index], index, False
        if rng is not None:
            clip = train_transform(frames, rng, size=size, scale=(self.config.crop_scale, 1.0), as_uint8=True,
                                   crop=self.crop)
        else:
            clip = eval_transform(frames, size=size, as_uint8=True)
        return clip, self.targets[index], index, True

    def _region(self, index: int) -> tuple[int, int, int, int]:
        x0, y0, x1, y1 = (int(v) for v in self.regions[index])
        return x0, y0, x1, y1

    def _all_frames(self, index: int) -> torch.Tensor:
        """Every frame of clip `index`, resized to uint8 (F, 3, S, S): from the cache, read on first use."""
        assert self.cache is not None
        if index not in self.cache:
            frames = read_frames(self.paths[index], np.arange(int(self.n_frames[index])), region=self._region(index))
            self.cache[index] = eval_transform(frames, size=self.config.input_size, as_uint8=True)
        return self.cache[index]


def prepare_batch(clips: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 (N, T, 3, S, S) -> float32 in [0, 1] on `device`, each frame laid out channels-last.

    The returned tensor has the shape (N, T, 3, S, S) but the memory order
    (N, T, S, S, 3), so the model's reshape to (N * T, 3, S, S) is a
    channels-last view without a copy.
    """
    clips = clips.to(device, non_blocking=True)
    laid_out = clips.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
    return laid_out.float().div_(255.0)
