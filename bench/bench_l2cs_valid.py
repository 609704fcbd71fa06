"""Validation throughput of `l2cs/run_valid_l2cs.py`'s loop vs an anchor-style loop.

Same model (L2CS ResNet-50, published width, 90 bins, seeded random
weights), same generated 224x112 JPG crops, one run:

* anchor: batch 1, no workers, per image PIL open + torchvision
  Resize/ToTensor/Normalize, `torch.no_grad`, one decode per image;
* batched: our DataLoader (OpenCV decode in workers, uint8 batches,
  normalisation on the batch) and `predict`, contiguous memory, BatchNorm kept;
* ours: as batched, plus channels_last and BatchNorm folded into the
  convolutions (what `run_valid_l2cs.py` runs).

Prints images/s of each and the ratios. Target: ours >= 5x anchor on 2 CPU
cores. Keep it short: `--anchor-images` and `--images` set the work.
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

from l2cs.bins import BinSpec
from l2cs.config import IMAGENET_MEAN, IMAGENET_STD
from l2cs.dataset import EyeCrops, read_eye_crops, worker_init
from l2cs.model import L2CS, fold_batchnorm
from l2cs.predict import predict
from tests.l2cs_fakes import make_fake_crops

WIDTH, HEIGHT = 224, 112
BINS = BinSpec(90, 4.0, -180.0)


def anchor_loop(model: torch.nn.Module, root: Path, paths: list[str]) -> np.ndarray:
    """The reference style: one image at a time, preprocessing per image in Python."""
    transform = transforms.Compose([transforms.Resize((HEIGHT, WIDTH)), transforms.ToTensor(),
                                    transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    out = []
    with torch.no_grad():
        for rel in paths:
            image = transform(Image.open(root / rel).convert("RGB")).unsqueeze(0)
            pitch_logits, yaw_logits = model(image)
            out.append((BINS.decode(pitch_logits).item(), BINS.decode(yaw_logits).item()))
    return np.array(out)


def our_loop(model: torch.nn.Module, root: Path, paths: list[str], batch_size: int, workers: int) -> np.ndarray:
    dataset = EyeCrops(root, paths, np.zeros((len(paths), 2)), width=WIDTH, height=HEIGHT)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, worker_init_fn=worker_init)
    return predict(model, loader, BINS, torch.device("cpu"), progress=False).pitch_yaw


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
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; ResNet-50 L2CS at {WIDTH}x{HEIGHT}")
    with tempfile.TemporaryDirectory() as tmp:
        root = make_fake_crops(Path(tmp), {"test": args.images}, width=WIDTH, height=HEIGHT)
        paths = list(read_eye_crops(root, "test").rows["jpg_path"])
        torch.manual_seed(0)
        model = L2CS(arch="resnet50", num_bins=90).eval()
        our_loop(model, root, paths[:args.batch_size], args.batch_size, 0)  # warm-up (allocator, kernels)
        anchor, anchor_out = timed("anchor (batch 1, PIL per image, no workers)", args.anchor_images,
                                   lambda: anchor_loop(model, root, paths[:args.anchor_images]))
        batched, batched_out = timed(f"batched (batch {args.batch_size}, {args.workers} workers)", len(paths),
                                     lambda: our_loop(model, root, paths, args.batch_size, args.workers))
        fast = fold_batchnorm(model).to(memory_format=torch.channels_last)
        ours, ours_out = timed("ours (+ channels_last, folded BatchNorm)", len(paths),
                               lambda: our_loop(fast, root, paths, args.batch_size, args.workers))
    agree = np.abs(ours_out[:args.anchor_images] - anchor_out).max()
    print(f"max |ours - anchor| prediction difference: {agree:.4f} deg (same decoded pixels: no resize needed)")
    print(f"ratio batched / anchor: {batched / anchor:.2f}x")
    print(f"ratio ours / anchor: {ours / anchor:.2f}x (target >= 5x on 2 CPU cores)")


if __name__ == "__main__":
    main()
