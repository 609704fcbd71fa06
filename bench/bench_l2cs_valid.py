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


def our_loader(root: Path, paths: list[str], batch_size: int, workers: int) -> DataLoader:
    dataset = EyeCrops(root, paths, np.zeros((len(paths), 2)), width=WIDTH, height=HEIGHT)
    return DataLoader(dataset, batch_size=batch_size, num_workers=workers, worker_init_fn=worker_init)


def our_loop(model: torch.nn.Module, root: Path, paths: list[str], batch_size: int, workers: int,
             device: torch.device) -> np.ndarray:
    return run_inference(model, our_loader(root, paths, batch_size, workers), device, prepare=prepare_batch,
                         decode=lambda out, _: BINS.decode_pair(out), progress=False).values


def random_crops(batch: int, device: torch.device, channels_last: bool) -> torch.Tensor:
    """Random network input of the crops' size, for the forward-only rate."""
    x = torch.randn(batch, 3, HEIGHT, WIDTH, device=device)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def main() -> None:
    args = bench_parser(__doc__, "images", anchor=32, ours=128, ours_help="crops timed with the batched loops",
                        batch_size=32).parse_args()
    start_load(args.load)
    with tempfile.TemporaryDirectory() as tmp:
        root = make_fake_crops(Path(tmp), {"test": args.images}, width=WIDTH, height=HEIGHT)
        paths = list(read_eye_crops(root, "test").rows["jpg_path"])
        anchor_n = min(args.anchor_images, len(paths))
        torch.manual_seed(0)
        cpu = torch.device("cpu")
        model = L2CS(arch="resnet50", num_bins=90).eval()
        floor_anchor = forward_rate(model, random_crops(1, cpu, channels_last=False), anchor_n, cpu)
        # the anchor on the CPU's default threads, then on what run_valid_l2cs.py picks (CUDA when visible)
        anchor = time_anchor(model, lambda net, device, n: anchor_loop(net, root, paths[:n], device), anchor_n,
                             warm_up=2, device_name=args.device, workers=args.workers)
        model, device, workers = anchor.model, anchor.device, anchor.workers
        our_loop(model, root, paths[:args.batch_size], args.batch_size, 0, device)  # warm-up
        batched, _ = timed(f"batched (batch {args.batch_size}, {workers} workers)", len(paths),
                           lambda: our_loop(model, root, paths, args.batch_size, workers, device))
        fast = fold_batchnorm(model).to(memory_format=torch.channels_last)
        ours, ours_out, floor_ours = ours_and_ceiling(
            args.repeats, lambda: timed("ours (+ channels_last, folded BatchNorm)", len(paths),
                                        lambda: our_loop(fast, root, paths, args.batch_size, workers, device)),
            lambda: forward_rate(fast, random_crops(args.batch_size, device, channels_last=True),
                                 max(1, len(paths) // args.batch_size), device))
        decode, _ = timed(f"decode alone ({workers} workers)", len(paths),
                          lambda: drain(our_loader(root, paths, args.batch_size, workers)))
    agree = np.abs(ours_out[:anchor_n] - anchor.output).max()
    print(f"torch {torch.__version__}; ResNet-50 L2CS at {WIDTH}x{HEIGHT}; device {device}")
    print(f"max |ours - anchor| prediction difference: {agree:.4f} deg (same decoded pixels: no resize needed)")
    print(f"model forward alone: batch 1 on {anchor.default_threads} thread(s) {floor_anchor:.1f} images/s "
          f"({100 * anchor.default_rate / floor_anchor:.0f} % of the anchor's time is the forward pass); "
          f"batch {args.batch_size} as ours on {device} {floor_ours:.1f} images/s")
    print_ratios(ours, anchor.default_rate, anchor.same_rate, floor_ours,
                 also=f" (batching alone: {batched / anchor.same_rate:.2f}x)", load=args.load)
    print_pipeline("l2cs", ours, decode, floor_ours, device)


if __name__ == "__main__":
    main()
