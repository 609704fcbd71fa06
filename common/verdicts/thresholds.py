"""Acceptance thresholds, official results, skip reasons and the verdict rule.

The numbers live in ``common/data/thresholds.json``, one entry per test
(``l2cs``, ``rit``, ``dfer``). A metric value is in the unit its metric
function returns: degrees for the angular error, a fraction in [0, 1] for
mIoU and WAR; ``display_scale`` (100 for those) turns it into the percent
shown to people. An override file has the same shape and only needs the keys
it changes, e.g. ``{"rit": {"threshold": 0.75}}``.

Coverage rule (every test): each sample of the split is either scored or
skipped under one reason of ``SKIP_REASONS``. A reason is the data's (the
sample cannot be scored whatever is submitted) or the submission's (the
weights or the predictions file left it unscored). ``decide`` gives the
verdict: PASS/FAIL only when no sample was skipped because of the
submission; otherwise ERROR (no verdict), or PARTIAL when a partial score
was asked for. Neither ever passes.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from common.suite.registry import KEYS, get_test

#: The registered tests' keys (common.suite.registry), always current.
TESTS = KEYS
DATA, SUBMISSION = "data", "submission"
SKIP_KINDS = (DATA, SUBMISSION)

#: The one vocabulary of skip reasons: reason -> (kind, meaning). A test that
#: needs a new reason adds it here; ``common.verdicts.results.write_results`` refuses
#: any other. Extra predictions (for names outside the split) skip no sample
#: of the split: they are listed with the predictions' alignment, not here.
SKIP_REASONS: dict[str, tuple[str, str]] = {
    "invalid_label": (DATA, "the sample's label is invalid (the manifest's error column says why)"),
    "no_gaze_label": (DATA, "the label gives no gaze direction"),
    "missing_class_map": (DATA, "the crop's class-map PNG (the segmentation truth) is missing"),
    "missing_crop": (DATA, "no crop could be made for the sample"),
    "missing_image": (DATA, "the sample's image or crop file is missing"),
    "unreadable_image": (DATA, "the sample's image or crop file cannot be decoded"),
    "invalid_image": (DATA, "the sample's image is not of its delivery's size, or its labels lie outside it"),
    "missing_video": (DATA, "the clip's mp4 file is missing"),
    "unreadable_video": (DATA, "the clip's mp4 does not open or decode, or yields fewer frames than it declares"),
    "too_short_video": (DATA, "the clip has fewer frames than the model reads (16) and padding was not asked for"),
    "no_state_label": (DATA, "neither the video's JSON nor its file name gives an observer state"),
    "missing_prediction": (SUBMISSION, "the predictions file has no row for the sample"),
    "duplicated_prediction": (SUBMISSION, "the predictions file has more than one row for the sample"),
    "nonfinite_prediction": (SUBMISSION, "the predictions file gives NaN or infinity for the sample"),
    "nonfinite_output": (SUBMISSION, "the model's output for the sample is NaN or infinite"),
}

PASS, FAIL, PARTIAL, ERROR = "PASS", "FAIL", "PARTIAL", "ERROR"
VERDICTS = (PASS, FAIL, PARTIAL, ERROR)
_DIRECTIONS = {"<=": ">", ">=": "<"}
_FIELDS = ("metric", "label", "unit", "display_scale", "direction", "threshold", "official")


@dataclass(frozen=True)
class Threshold:
    """One test's acceptance rule and its official result."""

    test: str
    metric: str
    label: str
    unit: str
    display_scale: float
    direction: str
    threshold: float
    official: float
    official_note: str = ""

    def passes(self, value: float) -> bool:
        """True when ``value`` meets the threshold; NaN never passes."""
        if math.isnan(value):
            return False
        return value <= self.threshold if self.direction == "<=" else value >= self.threshold

    def check_range(self, value: float) -> None:
        """Refuse a value in the wrong unit (e.g. 81.2 where a fraction 0.812 is expected)."""
        if self.display_scale == 100 and not (math.isnan(value) or 0.0 <= value <= 1.0):
            raise ValueError(
                f"{self.test} {self.metric} value is {value}; expected a fraction in [0, 1] "
                f"(displayed as {self.unit} = value x 100)"
            )
        if self.unit == "deg" and not (math.isnan(value) or 0.0 <= value <= 180.0):
            raise ValueError(f"{self.test} {self.metric} value is {value}; expected degrees in [0, 180]")

    def show(self, value: float | None, digits: int = 2, *, compact: bool = False) -> str:
        """Human form, e.g. '4.61 deg' or '81.20 %' ('80 %' when compact); 'n/a' for None/NaN."""
        if value is None or math.isnan(value):
            return "n/a"
        shown = value * self.display_scale
        number = f"{round(shown, 6):g}" if compact else f"{shown:.{digits}f}"
        return f"{number} {self.unit}"

    def comparison(self, value: float) -> str:
        """The relation between value and threshold as shown: '<=' when it passes, else its negation."""
        return self.direction if self.passes(value) else _DIRECTIONS[self.direction]


def default_thresholds_file() -> Path:
    """The packaged thresholds.json."""
    return Path(str(resources.files("common") / "data" / "thresholds.json"))


def thresholds_file_of(test: str) -> Path:
    """The file holding ``test``'s rule: the packaged thresholds.json unless its registry entry names another."""
    declared = get_test(test).thresholds_file
    return Path(declared) if declared else default_thresholds_file()


def load_thresholds(override_file: Path | None = None) -> dict[str, Threshold]:
    """Load each registered test's rule from its thresholds file, then apply ``override_file`` key by key."""
    files = {test: thresholds_file_of(test) for test in TESTS}
    read = {path: _read_json(path) for path in set(files.values())}
    merged = {}
    for test, path in files.items():
        if not isinstance(read[path].get(test), dict):
            raise ValueError(f"{path}: no object under {test!r}; expected the rule of test {test}")
        merged[test] = read[path][test]
    if override_file is not None:
        override = _read_json(Path(override_file))
        for test, entry in override.items():
            if test.startswith("_"):
                continue
            if test not in TESTS or not isinstance(entry, dict):
                raise ValueError(f"{override_file}: key {test!r}; expected an object under one of {', '.join(TESTS)}")
            merged[test] = {**merged[test], **entry}
    rules = {test: threshold_from_entry(test, merged[test], override_file or files[test]) for test in TESTS}
    for test, rule in rules.items():
        declared = get_test(test)
        if (rule.metric, rule.direction) != (declared.metric, declared.direction):
            raise ValueError(f"{override_file or files[test]}: {test} is {rule.metric} {rule.direction}; the registry "
                             f"(common/suite/registry.py) declares {declared.metric} {declared.direction}")
    return rules


def threshold_for(test: str, override_file: Path | None = None) -> Threshold:
    """The rule of one test; ValueError for an unknown test name."""
    if test not in TESTS:
        raise ValueError(f"test is {test!r}; expected one of {', '.join(TESTS)}")
    return load_thresholds(override_file)[test]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: top level is {type(data).__name__}; expected an object keyed by test")
    return data


def threshold_from_entry(test: str, entry: dict[str, Any], source: Path | str) -> Threshold:
    """The Threshold of a thresholds.json entry, or of a metrics.json dict (it records the same keys).

    Raises ValueError naming ``source`` for a missing or malformed field.
    """
    missing = [f for f in _FIELDS if f not in entry]
    if missing:
        raise ValueError(f"{source}: {test} lacks {', '.join(missing)}")
    if entry["direction"] not in _DIRECTIONS:
        raise ValueError(f"{source}: {test}.direction is {entry['direction']!r}; expected '<=' or '>='")
    for field in ("display_scale", "threshold", "official"):
        if not isinstance(entry[field], (int, float)) or isinstance(entry[field], bool):
            raise ValueError(f"{source}: {test}.{field} is {entry[field]!r}; expected a number")
    return Threshold(
        test=test,
        metric=str(entry["metric"]),
        label=str(entry["label"]),
        unit=str(entry["unit"]),
        display_scale=float(entry["display_scale"]),
        direction=entry["direction"],
        threshold=float(entry["threshold"]),
        official=float(entry["official"]),
        official_note=str(entry.get("official_note", "")),
    )


def skip_kind(reason: str) -> str:
    """``data`` or ``submission``; ValueError for a reason outside the vocabulary."""
    if reason not in SKIP_REASONS:
        raise ValueError(f"skip reason {reason!r} is not in common.verdicts.thresholds.SKIP_REASONS; "
                         f"expected one of {', '.join(SKIP_REASONS)}")
    return SKIP_REASONS[reason][0]


def skips_by_kind(skipped: dict[str, int]) -> dict[str, int]:
    """Skip counts summed per kind, e.g. ``{"data": 2, "submission": 0}`` (both keys always present)."""
    totals = dict.fromkeys(SKIP_KINDS, 0)
    for reason, count in skipped.items():
        totals[skip_kind(reason)] += int(count)
    return totals


def decide(rule: Threshold, value: float | None, skipped: dict[str, int], *, allow_partial: bool) -> str:
    """The verdict of a run: PASS/FAIL from the value when the submission skipped nothing, else PARTIAL/ERROR.

    A NaN or missing value without a submission skip is an ERROR too (nothing
    to compare). ``allow_partial`` only turns ERROR into PARTIAL when a
    value exists; it never makes a PASS.
    """
    value_known = value is not None and not math.isnan(float(value))
    if skips_by_kind(skipped)[SUBMISSION]:
        return PARTIAL if allow_partial and value_known else ERROR
    if not value_known:
        return ERROR
    return PASS if rule.passes(float(value)) else FAIL


def passed_of(verdict: str) -> bool | None:
    """metrics.json's ``passed``: True for PASS, False for FAIL, None (no verdict) for PARTIAL and ERROR."""
    return {PASS: True, FAIL: False}.get(verdict)
