"""Validation throughput of `l2cs/run_valid_l2cs.py`'s loop vs an anchor-style loop.

Same model (L2CS ResNet-50, published width, 90 bins, seeded random
weights), same generated 224x112 JPG crops, one run:

* anchor: batch 1, no workers, per image PIL open + torchvision
  Resize/ToTensor/Normalize, `torch.no_grad`, one decode per image; timed
  twice: as a plain script runs it (the stack's default torch threads, one
  on Debian's torch) and on the device/threads `pick_device` gives ours;
* batched: our DataLoader (OpenCV decode in workers, uint8 batches,
  normalisation on the batch) and `predict`, contiguous memory, BatchNorm kept;
* ours: as batched, plus channels_last and BatchNorm folded into the
  convolutions (what `run_valid_l2cs.py` runs).

Prints images/s of each and the ratios. Target: ours >= 5x anchor on 2 CPU
cores. It also prints the compute ceiling measured in the same run: the
model's forward pass alone on random tensors (no decode, no preprocessing,
no bin decode), at batch 1 on the anchor's threads and batched on ours. No
loop can beat the ratio of the anchor's rate to that batched forward rate:
if it is under 5x, the target needs a faster device, not a better loop. `--device cuda` (or auto on a GPU host) measures the CUDA path. Keep it short: `--anchor-images` and `--images` set the work.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import transforms

from common.engine.batches import worker_init
from common.engine.device import pick_device, set_cudnn_mode
from common.engine.inference import run_inference
from l2cs.bins import BinSpec
from l2cs.config import IMAGENET_MEAN, IMAGENET_STD
from l2cs.dataset import EyeCrops, prepare_batch, read_eye_crops
from l2cs.model import L2CS, fold_batchnorm
from tests.l2cs_fakes import make_fake_crops

WIDTH, HEIGHT = 224, 112
BINS = BinSpec(90, 4.0, -180.0)


def anchor_loop(model: torch.nn.Module, root: Path, paths: list[str], device: torch.device) -> np.ndarray:
    """The reference style: one image at a time, preprocessing per image in Python."""
    transform = transforms.Compose([transforms.Resize((HEIGHT, WIDTH)), transforms.ToTensor(),
                                    transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    out = []
    with torch.no_grad():
        for rel in paths:
            image = transform(Image.open(root / rel).convert("RGB")).unsqueeze(0).to(device)
            pitch_logits, yaw_logits = model(image)
            out.append((BINS.decode(pitch_logits).item(), BINS.decode(yaw_logits).item()))
    return np.array(out)


def our_loop(model: torch.nn.Module, root: Path, paths: list[str], batch_size: int, workers: int,
             device: torch.device) -> np.ndarray:
    dataset = EyeCrops(root, paths, np.zeros((len(paths), 2)), width=WIDTH, height=HEIGHT)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, worker_init_fn=worker_init)
    return run_inference(model, loader, device, prepare=prepare_batch, decode=lambda out, _: BINS.decode_pair(out),
                         progress=False).values


def forward_rate(model: torch.nn.Module, batch: int, repeats: int, device: torch.device,
                 channels_last: bool) -> float:
    """Images/s of the model's forward pass alone on random input (after one warm-up pass)."""
    x = torch.randn(batch, 3, HEIGHT, WIDTH, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        model(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        for _ in range(repeats):
            model(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return batch * repeats / (time.perf_counter() - started)


def timed(label: str, n: int, fn) -> tuple[float, np.ndarray]:
    started = time.perf_counter()
    result = fn()
    rate = n / (time.perf_counter() - started)
    print(f"{label:<44} {rate:8.1f} images/s  ({n} images)")
    return rate, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--anchor-images", type=int, default=32, help="crops timed with the anchor loop")
    parser.add_argument("--images", type=int, default=128, help="crops timed with the batched loops")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto", help="auto (CUDA when visible), cpu or cuda")
    args = parser.parse_args()
    default_threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        root = make_fake_crops(Path(tmp), {"test": args.images}, width=WIDTH, height=HEIGHT)
        paths = list(read_eye_crops(root, "test").rows["jpg_path"])
        anchor_paths = paths[:args.anchor_images]
        torch.manual_seed(0)
        cpu = torch.device("cpu")
        model = L2CS(arch="resnet50", num_bins=90).eval()
        anchor_loop(model, root, anchor_paths[:2], cpu)  # warm-up
        floor_anchor = forward_rate(model, 1, len(anchor_paths), cpu, channels_last=False)
        # 1. the anchor as a plain script runs it: the stack's default torch threads on the CPU
        anchor_default, anchor_out = timed(f"anchor, CPU, {default_threads} thread(s) (stack default)",
                                           len(anchor_paths), lambda: anchor_loop(model, root, anchor_paths, cpu))
        # 2. what run_valid_l2cs.py does: pick_device (CUDA when visible, else every core)
        device = pick_device(args.device)
        set_cudnn_mode(reproducible=True)  # as run_valid_l2cs.py: deterministic cuDNN, no TF32
        threads = torch.get_num_threads()
        model = model.to(device)
        anchor_loop(model, root, anchor_paths[:2], device)  # warm-up on this device
        anchor_same, _ = timed(f"anchor, {device}, {threads} thread(s)", len(anchor_paths),
                               lambda: anchor_loop(model, root, anchor_paths, device))
        our_loop(model, root, paths[:args.batch_size], args.batch_size, 0, device)  # warm-up
        batched, _ = timed(f"batched (batch {args.batch_size}, {args.workers} workers)", len(paths),
                           lambda: our_loop(model, root, paths, args.batch_size, args.workers, device))
        fast = fold_batchnorm(model).to(memory_format=torch.channels_last)
        ours, ours_out = timed("ours (+ channels_last, folded BatchNorm)", len(paths),
                               lambda: our_loop(fast, root, paths, args.batch_size, args.workers, device))
        floor_ours = forward_rate(fast, args.batch_size, max(1, len(paths) // args.batch_size), device,
                                  channels_last=True)
    agree = np.abs(ours_out[:args.anchor_images] - anchor_out).max()
    print(f"torch {torch.__version__}; ResNet-50 L2CS at {WIDTH}x{HEIGHT}; device {device}")
    print(f"max |ours - anchor| prediction difference: {agree:.4f} deg (same decoded pixels: no resize needed)")
    print(f"ratio ours / anchor as a plain script runs it: {ours / anchor_default:.2f}x (target >= 5x)")
    print(f"model forward alone: batch 1 on {default_threads} thread(s) {floor_anchor:.1f} images/s "
          f"({100 * anchor_default / floor_anchor:.0f} % of the anchor's time is the forward pass); "
          f"batch {args.batch_size} as ours on {device} {floor_ours:.1f} images/s")
    print(f"ceiling (forward alone / anchor as a plain script runs it): {floor_ours / anchor_default:.2f}x; "
          f"ours reaches {100 * ours / floor_ours:.0f} % of the forward-only rate")
    print(f"ratio ours / anchor on the same device and threads: {ours / anchor_same:.2f}x "
          f"(batching alone: {batched / anchor_same:.2f}x)")


if __name__ == "__main__":
    main()
