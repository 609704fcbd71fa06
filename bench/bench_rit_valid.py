"""Validation throughput of `ritnet/test.py`'s loop vs an anchor-style loop.

Same model (DenseNet2D at the published width 32, the NIA's 3 classes,
seeded random weights, eval mode), same generated 160x96 per-eye crops
(JPG + class-map PNG), one run:

* anchor: the reference's way, batch 1, no workers: per image PIL open +
  `convert("L")`, the gamma table and CLAHE on the numpy array,
  torchvision ToTensor + Normalize(0.5, 0.5), `torch.no_grad`, the arg-max
  and the per-class counts in numpy; timed twice: as a plain script runs it
  (the stack's default torch threads, one on Debian's torch) and on the
  device/threads `pick_device` gives ours;
* ours: what `ritnet/test.py` runs: `ScoringCrops` (OpenCV decode, gamma,
  CLAHE in DataLoader workers), `for_inference` (channels_last; on the CPU
  4 crops per forward pass) under inference_mode, the arg-max and per-crop
  confusion counts on the device (`run_inference`).

Prints images/s of each and the ratios. Target: ours >= 5x the anchor on
2 CPU cores, or >= 90 % of the compute ceiling when that is below 5x. The
ceiling is measured in the same run: the forward pass alone on random
tensors (no decode, no preprocessing, no counts), batched on ours'
threads; no loop can beat anchor-rate x (ceiling / batch-1 forward rate).
It also prints the batch-1 forward latency in images/s (the figure the
RITnet paper quotes: > 300 Hz on a GTX 1080 Ti at 640x400), at 160x96 and
at 640x400. `--device cuda` (or auto on a GPU host) measures the CUDA path.
Keep it short: `--anchor-images` and `--images` set the work.
"""
from __future__ import annotations

import copy
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.cores import settle_wait_policy  # noqa: E402

settle_wait_policy()  # as the validation scripts do, before torch loads

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import transforms

from bench.timing import (bench_parser, drain, forward_rate, ours_and_ceiling, print_pipeline, print_ratios,
                          start_load, time_anchor, timed)
from common.engine.batches import worker_init
from common.engine.inference import run_inference
from ritnet.dataset import ScoringCrops, prepare_batch, read_seg_crops
from ritnet.model import DenseNet2D
from ritnet.preprocess import apply_clahe, apply_gamma
from ritnet.scoring import CPU_FORWARD_BATCH, InChunks, Predictor, for_inference
from tests.rit_fakes import make_seg_crops

WIDTH, HEIGHT, CLASSES = 160, 96, 3
PAPER_SIZE = (640, 400)  # width x height of the OpenEDS frames the paper's 300 Hz refers to


def anchor_loop(model: torch.nn.Module, root: Path, pairs: list[tuple[str, str]], device: torch.device) -> np.ndarray:
    """The reference style: one image at a time, preprocessing and counting per image in Python."""
    to_tensor = transforms.Compose([transforms.ToTensor(), transforms.Normalize([0.5], [0.5])])
    out = []
    with torch.no_grad():
        for jpg, png in pairs:
            grey = apply_clahe(apply_gamma(np.array(Image.open(root / jpg).convert("L"))))
            scores = model(to_tensor(grey).unsqueeze(0).to(device))
            pred = scores.argmax(dim=1)[0].cpu().numpy()
            truth = np.array(Image.open(root / png))
            out.append(np.bincount(truth.ravel() * CLASSES + pred.ravel(), minlength=CLASSES * CLASSES))
    return np.array(out, dtype=np.float64)


def our_loader(root: Path, pairs: list[tuple[str, str]], batch_size: int, workers: int,
               device: torch.device) -> DataLoader:
    dataset = ScoringCrops(root, [j for j, _ in pairs], [p for _, p in pairs], width=WIDTH, height=HEIGHT,
                           map_size=(WIDTH, HEIGHT))
    return DataLoader(dataset, batch_size=batch_size, num_workers=workers, worker_init_fn=worker_init,
                      pin_memory=device.type == "cuda")


def our_loop(model: torch.nn.Module, root: Path, pairs: list[tuple[str, str]], batch_size: int, workers: int,
             device: torch.device) -> np.ndarray:
    loader = our_loader(root, pairs, batch_size, workers, device)
    predictor = Predictor(CLASSES, WIDTH, HEIGHT)
    return run_inference(model, loader, device, prepare=prepare_batch,
                         decode=predictor.confusion, progress=False).values


def rate(model: torch.nn.Module, batch: int, repeats: int, device: torch.device,
         size: tuple[int, int] = (WIDTH, HEIGHT)) -> float:
    """Images/s of the model's forward pass alone on random grey input of `size` (width, height)."""
    x = torch.randn(batch, 1, size[1], size[0], device=device)
    if device.type == "cpu" and isinstance(model, InChunks):
        x = x.contiguous(memory_format=torch.channels_last)
    return forward_rate(model, x, repeats, device)


def main() -> None:
    args = bench_parser(__doc__, "images", anchor=32, ours=256, ours_help="crops timed with our loop",
                        batch_size=64).parse_args()
    start_load(args.load)
    with tempfile.TemporaryDirectory() as tmp:
        root = make_seg_crops(Path(tmp), {"test": (args.images + 1) // 2}, width=WIDTH, height=HEIGHT)
        rows = read_seg_crops(root, "test").rows.iloc[:args.images]
        pairs = list(zip(rows["jpg_path"], rows["png_path"]))
        anchor_n = min(args.anchor_images, len(pairs))
        torch.manual_seed(0)
        cpu = torch.device("cpu")
        model = DenseNet2D(num_classes=CLASSES, channels=32).eval()
        floor_anchor = rate(model, 1, anchor_n, cpu)
        paper_anchor = rate(model, 1, max(2, anchor_n // 8), cpu, PAPER_SIZE)
        # the anchor on the CPU's default threads, then on what ritnet/test.py picks (CUDA when visible)
        anchor = time_anchor(model, lambda net, device, n: anchor_loop(net, root, pairs[:n], device), anchor_n,
                             warm_up=2, device_name=args.device, workers=args.workers, width=48)
        model, device, workers = anchor.model, anchor.device, anchor.workers
        fast = for_inference(copy.deepcopy(model), device)  # channels_last; a few crops per pass on the CPU
        our_loop(fast, root, pairs[:args.batch_size], args.batch_size, 0, device)  # warm-up
        repeats = max(1, len(pairs) // args.batch_size)
        label = f"ours (batch {args.batch_size}, {workers} workers)"
        ours, ours_out, ceiling = ours_and_ceiling(
            args.repeats, lambda: timed(label, len(pairs), lambda: our_loop(fast, root, pairs, args.batch_size,
                                                                             workers, device), width=48),
            lambda: rate(fast, args.batch_size, repeats, device))
        decode, _ = timed(f"decode alone ({workers} workers)", len(pairs),
                          lambda: drain(our_loader(root, pairs, args.batch_size, workers, device)), width=48)
        one_pass = rate(model, args.batch_size, repeats, device)
        latency_crop = rate(model, 1, anchor_n, device)
        latency_paper = rate(model, 1, max(2, anchor_n // 8), device, PAPER_SIZE)
    moved = np.abs(ours_out[:anchor_n] - anchor.output)
    differ, pixels = int((moved.sum(axis=1) > 0).sum()), moved.sum() / 2 / (anchor_n * WIDTH * HEIGHT)
    print(f"torch {torch.__version__}; DenseNet2D width 32, {CLASSES} classes, at {WIDTH}x{HEIGHT}; device {device}")
    print(f"ours vs anchor: {differ} of {anchor_n} crops with other counts, {100 * pixels:.3f} % of pixels "
          "(PIL vs OpenCV JPEG decode and grey conversion round differently)")
    print(f"model forward alone: batch 1 on {anchor.default_threads} thread(s) {floor_anchor:.1f} images/s "
          f"({100 * anchor.default_rate / floor_anchor:.0f} % of the anchor's time is the forward pass); "
          f"batch {args.batch_size} as ours on {device} {ceiling:.1f} images/s (in one contiguous pass: "
          f"{one_pass:.1f}; ours runs {CPU_FORWARD_BATCH} crops per pass on the CPU, in channels_last)")
    print_ratios(ours, anchor.default_rate, anchor.same_rate, ceiling, load=args.load)
    print_pipeline("rit", ours, decode, ceiling, device)
    print(f"batch-1 latency on {device}: {latency_crop:.1f} images/s at {WIDTH}x{HEIGHT}, {latency_paper:.1f} "
          f"images/s at {PAPER_SIZE[0]}x{PAPER_SIZE[1]} (paper: > 300 on a GTX 1080 Ti at 640x400); "
          f"{paper_anchor:.1f} images/s at 640x400 on {anchor.default_threads} CPU thread(s)")


if __name__ == "__main__":
    main()
