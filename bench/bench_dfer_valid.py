"""Validation throughput of `dfer/valid_nia.py`'s loop vs an anchor-style loop.

Same model (the published Former-DFER, width 64, 5 classes, seeded random
weights), same generated mp4s (`--frames` frames of `--size`, the clip's
region a centred square), one run:

* anchor: batch 1, no workers; per video, OpenCV decodes and converts every
  frame, then the 16 test frames are picked, cut to the region and each is
  resized with PIL (bilinear, as the reference's `GroupResize`) and turned
  into a tensor; `torch.no_grad`; timed as a plain script runs it (the
  stack's default torch threads, one on Debian's torch) and on the
  device/threads `pick_device` gives ours;
* ours: `StateClips` in DataLoader workers (exact 16 frames by grab-and-skip,
  only those converted, uint8 clips), `prepare_batch` and `run_inference` in
  batches, channels-last, on the CPU one clip per pass in one one-thread
  stream per core (`for_inference`): what `valid_nia.py` runs.

Prints clips/s of each and the ratios, and the compute ceiling measured in
the same run: the forward pass alone on random clips, at batch 1 on the
anchor's threads and batched on ours. No loop can beat the anchor by more
than that batched forward rate allows: if the ceiling is under 5x, the
target needs a faster device, not a better loop. `--device cuda` (or auto on
a GPU host) measures the CUDA path. Keep it short: `--anchor-clips` and
`--clips` set the work.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.cores import settle_wait_policy  # noqa: E402

settle_wait_policy()  # as the validation scripts do, before torch loads

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from bench.timing import (bench_parser, drain, forward_rate, ours_and_ceiling, print_pipeline, print_ratios,
                          start_load, time_anchor, timed)
from common.engine.batches import worker_init
from common.engine.inference import run_inference
from dfer.config import preset
from dfer.dataset import StateClips, prepare_batch, read_state_clips
from dfer.model import FormerDFER
from dfer.sampling import eval_indices
from dfer.valid_nia import for_inference, predicted_state
from tests.dfer_fakes import STATES, FakeClip, clip_name, write_clip_set

SIZE = 112


def anchor_clip(path: str, region: np.ndarray) -> torch.Tensor:
    """The reference style: decode and convert every frame, pick the 16 test frames, preprocess frame by frame."""
    capture = cv2.VideoCapture(path)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    x0, y0, x1, y1 = (int(v) for v in region)
    tensors = []
    for k in eval_indices(len(frames)):
        image = Image.fromarray(frames[k][y0:y1, x0:x1]).resize((SIZE, SIZE), Image.BILINEAR)
        tensors.append(torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1))
    return torch.stack(tensors)


def anchor_loop(model: torch.nn.Module, paths: list[str], regions: np.ndarray, device: torch.device) -> np.ndarray:
    out = []
    with torch.no_grad():
        for path, region in zip(paths, regions):
            out.append(int(model(anchor_clip(path, region).unsqueeze(0).to(device)).argmax(dim=1)))
    return np.array(out)


def our_loader(dataset: StateClips, batch_size: int, workers: int) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, num_workers=workers, worker_init_fn=worker_init)


def our_loop(model: torch.nn.Module, dataset: StateClips, batch_size: int, workers: int,
             device: torch.device) -> np.ndarray:
    loader = our_loader(dataset, batch_size, workers)
    result = run_inference(model, loader, device, prepare=prepare_batch, decode=lambda out, _: predicted_state(out),
                           progress=False)
    return result.values[:, 0].astype(np.int64)


def random_clips(batch: int, device: torch.device, channels_last: bool) -> torch.Tensor:
    """Random 16-frame clips of the network's input size, for the forward-only rate."""
    clips = torch.rand(batch, 16, 3, SIZE, SIZE, device=device)
    return clips.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3) if channels_last else clips


CLIPS = {"unit": "clips", "width": 48, "digits": 2}  # how `timed` prints the clip rates


def make_videos(folder: Path, n: int, frames: int, size: tuple[int, int]) -> Path:
    side = min(size)
    x0, y0 = (size[0] - side) // 2, (size[1] - side) // 2
    clips = [FakeClip(clip_name(1 + k // 8, 1 + k % 8, STATES[k % 5]), "test", STATES[k % 5], f"{1 + k // 8:03d}",
                      n_frames=frames) for k in range(n)]
    return write_clip_set(folder, clips, region=(x0, y0, x0 + side, y0 + side), size=size)


def main() -> None:
    parser = bench_parser(__doc__, "clips", anchor=8, ours=32, ours_help="clips timed with our loop", batch_size=8)
    parser.add_argument("--frames", type=int, default=48, help="frames per video")
    parser.add_argument("--size", default="640x360", help="video frame size WxH")
    args = parser.parse_args()
    start_load(args.load)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    config = preset("official")
    with tempfile.TemporaryDirectory() as tmp:
        clips_dir = make_videos(Path(tmp), max(args.clips, args.anchor_clips), args.frames, size)
        rows = read_state_clips(clips_dir, "test").rows
        paths, regions = list(rows["video_file"]), rows[["x0", "y0", "x1", "y1"]].to_numpy()
        anchor_n = args.anchor_clips
        torch.manual_seed(0)
        cpu = torch.device("cpu")
        model = FormerDFER(**config.model_kwargs()).eval()
        floor_anchor = forward_rate(model, random_clips(1, cpu, channels_last=False), anchor_n, cpu)
        # the anchor on the CPU's default threads, then on what valid_nia.py picks (CUDA when visible)
        anchor = time_anchor(model, lambda net, device, n: anchor_loop(net, paths[:n], regions[:n], device),
                             anchor_n, warm_up=1, device_name=args.device, workers=args.workers, **CLIPS)
        model, device, workers = anchor.model, anchor.device, anchor.workers
        fast = for_inference(model, device)  # channels_last; on the CPU one-thread streams of one clip per pass
        passes = "one-thread streams" if device.type == "cpu" else "channels_last"
        dataset = StateClips(rows.iloc[:args.clips].reset_index(drop=True), config, train=False)
        our_loop(fast, StateClips(rows.iloc[:args.batch_size].reset_index(drop=True), config, train=False),
                 args.batch_size, 0, device)  # warm-up
        ours, ours_out, floor_ours = ours_and_ceiling(
            args.repeats, lambda: timed(f"ours (batch {args.batch_size}, {workers} workers, {passes})",
                                        args.clips, lambda: our_loop(fast, dataset, args.batch_size, workers, device),
                                        **CLIPS),
            lambda: forward_rate(fast, random_clips(args.batch_size, device, channels_last=True),
                                 max(1, args.clips // args.batch_size), device), unit="clips")
        decode, _ = timed(f"decode alone ({workers} workers)", args.clips,
                          lambda: drain(our_loader(dataset, args.batch_size, workers)), **CLIPS)
    agree = int((ours_out[:anchor_n] == anchor.output).sum())
    print(f"torch {torch.__version__}; Former-DFER (width 64, 16 x {SIZE} x {SIZE}); videos {args.frames} frames "
          f"of {size[0]}x{size[1]}; device {device}")
    print(f"same predicted state on {agree} of {anchor_n} clips (resize filters differ: PIL vs antialiased torch)")
    print(f"model forward alone: batch 1 on {anchor.default_threads} thread(s) {floor_anchor:.2f} clips/s "
          f"({100 * anchor.default_rate / floor_anchor:.0f} % of the anchor's time is the forward pass); "
          f"batch {args.batch_size} as ours on {device} {floor_ours:.2f} clips/s ({passes})")
    print_ratios(ours, anchor.default_rate, anchor.same_rate, floor_ours, load=args.load)
    print_pipeline("dfer", ours, decode, floor_ours, device)


if __name__ == "__main__":
    main()
