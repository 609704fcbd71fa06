"""The blink test's entry point: score DATA/samples.csv with WEIGHTS into OUT (metrics.json, per_sample.csv).

Exit 0 PASS, 1 FAIL, 2 no verdict, as every entry point (common.verdicts.results).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch

from common.verdicts.provenance import collect_provenance
from common.verdicts.results import exit_code_for, metric_of, verdict_line, write_results
from tests.fourth_test.blink import READINGS, TEST, model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rows = pd.read_csv(args.data / "samples.csv", dtype={"name": str, "subject": str, "inst": str})
    detector = model()
    detector.load_state_dict(torch.load(args.weights, map_location="cpu"))
    with torch.no_grad():
        logits = detector(torch.tensor(rows[READINGS].to_numpy(), dtype=torch.float32))[:, 0]
    per_sample = rows[["name", "subject", "inst", "truth"]].assign(pred=(logits > 0).to(torch.int64).numpy())
    value = TEST.score(per_sample, {})["recomputed_value"]  # the registry's scorer: the report recomputes it so
    result = write_results(args.out, test=TEST.key, metric=metric_of(TEST.key), value=value, per_sample=per_sample,
                           n_skipped=0, skipped={}, ci95=None, n_in_split=len(rows),
                           provenance=collect_provenance(weights_path=args.weights, device="cpu"))
    print(verdict_line(result))
    return exit_code_for(result)


if __name__ == "__main__":
    sys.exit(main())
