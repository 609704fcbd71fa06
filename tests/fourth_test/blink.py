"""The blink test's registry entry, scorer, report section and model; importing this module registers it.

Named in ``$NIA_TEST_PLUGINS`` (``tests.fourth_test.blink``), it makes `nia report` and `nia suite table`
know the test. Its data: ``samples.csv`` rows of ``name, subject, inst, o0..o7, truth``: eight eye-openness
readings and whether the eye blinked (1) or not (0). Its value: the F1 of the blink class.
"""
from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import pandas as pd

from common.suite.registry import REGISTRY, AcceptanceTest, register

HERE = Path(__file__).resolve().parent
FOLDER = "tests/fourth_test"
READINGS = [f"o{i}" for i in range(8)]

TEST = AcceptanceTest(
    key="blink", title="blink detector", image="nia_demo_blink", code_dir=FOLDER,
    entry=f"{FOLDER}/valid_blink.py", weights_file="blink.pt", demo_data="synth_blink",
    train_script=f"{FOLDER}/train_blink.py", metric="f1", direction=">=",
    required_columns=("name", "subject", "inst", "pred", "truth"),
    scorer=f"{__name__}:score", section=f"{__name__}:section", sample_noun="sequences",
    thresholds_file=str(HERE / "thresholds.json"),
)


def score(per_sample: pd.DataFrame, extra: dict[str, Any]) -> dict[str, Any]:
    """F1 of the blink class from the pred/truth columns (the entry point's value and the report's)."""
    pred, truth = per_sample["pred"].astype(int), per_sample["truth"].astype(int)
    hits = int(((pred == 1) & (truth == 1)).sum())
    claimed, real = int((pred == 1).sum()), int((truth == 1).sum())
    precision = hits / claimed if claimed else math.nan
    recall = hits / real if real else math.nan
    f1 = 2 * hits / (claimed + real) if claimed + real else math.nan
    return {"precision": precision, "recall": recall, "recomputed_value": f1}


def section(entry: dict[str, Any], result_dir: Any, details: dict[str, Any]) -> list[str]:
    """report.html: precision and recall (no plot)."""
    shown = {name: html.escape(f"{details[name]:.3f}") for name in ("precision", "recall")}
    return [f"<p>blink precision {shown['precision']}, recall {shown['recall']}</p>"]


def model() -> Any:
    """The detector: one linear layer over the eight readings (logit > 0: a blink)."""
    import torch

    return torch.nn.Linear(len(READINGS), 1)


if TEST.key not in REGISTRY:
    register(TEST)
