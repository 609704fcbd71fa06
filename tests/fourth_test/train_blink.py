"""Train the blink detector on DATA/samples.csv and write OUT/best.pt (a state dict)."""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch

from tests.fourth_test.blink import READINGS, model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rows = pd.read_csv(args.data / "samples.csv")
    inputs = torch.tensor(rows[READINGS].to_numpy(), dtype=torch.float32)
    truth = torch.tensor(rows["truth"].to_numpy(), dtype=torch.float32)[:, None]
    torch.manual_seed(0)
    detector = model()
    optimiser = torch.optim.SGD(detector.parameters(), lr=0.5)
    for _ in range(300):
        optimiser.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(detector(inputs), truth)
        loss.backward()
        optimiser.step()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(detector.state_dict(), args.out / "best.pt")


if __name__ == "__main__":
    main()
