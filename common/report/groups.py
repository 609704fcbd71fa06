"""Where the error lives: each test's value split by group, with each group's contribution.

Every test's headline is a ratio of per-sample sums, averaged over classes:
the mean angular error is sum(error) / n, WAR sum(correct) / n, mIoU the mean
over classes of sum(intersection) / sum(union). ``Counts`` holds those
per-sample numerators and denominators, so one set of functions splits any of
the three by group, bootstraps a CI per group and decomposes the value.

**Contribution** (documented in report.json as ``contribution_rule``): for
each class c with a non-zero total denominator D_c, a group g adds
(N_gc - D_gc * r_c) / D_c, where N_gc, D_gc are the group's sums and r_c the
overall ratio; the group's contribution is the mean of that over the classes
the value averages. For a plain mean (l2cs, dfer) this is
n_g / n * (mean_g - mean): "19 off-screen crops add 1.70 deg to 9.46 deg".
For mIoU it is the union share of the group times how far its IoU is from the
overall IoU, per class. Contributions of one grouping sum to 0; positive
raises the value (worse for l2cs, better for rit and dfer). The group's
**part** N_gc / D_c (averaged the same way) sums to the value itself over the
groups, so the change between two runs splits exactly into part_new - part_old
(`common.report.compare`).

Groupings come from the per-sample file and the NIA file name (each test's
``name`` starts with the 10 name fields: subject, display, image type, state,
posture, direction; `common/delivery/filenames.py`). The 95 % CI of a group
resamples subjects (videos inside one subject's group), as the headline's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from common.delivery.filenames import OLD_POSTURE, PREFIX
from common.metrics.bootstrap import bootstrap_ci
from common.metrics.segmentation import count_classes, miou_from_counts
from common.suite.registry import get_test, hook
from common.verdicts.thresholds import Threshold

#: Replicates per group CI (the headline uses more; groups are many and this keeps 250,000 rows fast).
GROUP_N_BOOT = 400
#: Groups listed at the top of a test's section: those that make the value worse the most.
N_TOP = 5
UNPARSED = "(name does not parse)"
UNKNOWN = "(unknown)"
CONTRIBUTION_RULE = (
    "For each class c averaged by the value (one class for a mean), a group adds (N_gc - D_gc * r_c) / D_c, "
    "N and D being the per-sample numerator and denominator sums (error and count for l2cs, correct and count "
    "for dfer, intersection and union for rit), r_c = N_c / D_c overall; the contribution is the mean over "
    "classes. For a mean it is n_g / n * (mean_g - mean). Contributions of one grouping sum to 0; positive "
    "raises the value. part = N_gc / D_c averaged the same way; parts sum to the value."
)


@dataclass(frozen=True)
class Grouping:
    """One way to split the samples: a key in report.json, a title, where the labels come from."""

    key: str
    title: str
    source: str


GROUPINGS = (
    Grouping("display", "display", "per_sample.csv inst (else file name field 6)"),
    Grouping("image_type", "image type", "file name field 7"),
    Grouping("state", "observer state", "file name field 8"),
    Grouping("posture", "posture", "file name field 9 (K read as T)"),
    Grouping("direction", "direction", "file name field 10"),
    Grouping("subject", "subject", "per_sample.csv subject"),
    Grouping("gaze_target", "gaze target", "per_sample.csv on_screen (pose.point inside the 1920x1080 screen)"),
)


@dataclass(frozen=True)
class Counts:
    """Per-sample numerators and denominators (N, C) of a test's value."""

    numerators: np.ndarray
    denominators: np.ndarray
    include_background: bool = True

    def value(self, numerators: np.ndarray, denominators: np.ndarray) -> np.ndarray | float:
        """The value from summed counts ((..., C) -> (...)): the class mean of the ratios."""
        return miou_from_counts(numerators, denominators, include_background=self.include_background)

    def used_classes(self, total_denominators: np.ndarray) -> np.ndarray:
        """Classes the value averages: present overall, class 0 only with the background."""
        used = total_denominators > 0
        if not self.include_background and used.size > 1:
            used[0] = False
        return used


def counts_of(test: str, per_sample: pd.DataFrame, extra: dict[str, Any] | None = None) -> Counts:
    """The additive counts behind ``test``'s value, from its per-sample file (the registry's counts hook);
    ValueError for a test that declares none (its report has no group tables)."""
    declared = get_test(test).counts
    if declared is None:
        raise ValueError(f"test {test} declares no additive counts: no group tables")
    return hook(declared)(per_sample, dict(extra or {}))


def gaze_counts(per_sample: pd.DataFrame, extra: dict[str, Any]) -> Counts:
    """l2cs: the mean of error_deg."""
    return Counts(per_sample[["error_deg"]].to_numpy(dtype=np.float64), np.ones((len(per_sample), 1)))


def state_counts(per_sample: pd.DataFrame, extra: dict[str, Any]) -> Counts:
    """dfer: WAR, the mean of pred == truth."""
    correct = per_sample["pred"].astype(str).to_numpy() == per_sample["truth"].astype(str).to_numpy()
    return Counts(correct.astype(np.float64)[:, None], np.ones((len(per_sample), 1)))


def segmentation_counts(per_sample: pd.DataFrame, extra: dict[str, Any]) -> Counts:
    """rit: the class mean of summed intersections over summed unions."""
    classes = count_classes(per_sample.columns)
    return Counts(per_sample[[f"inter_{c}" for c in classes]].to_numpy(dtype=np.float64),
                  per_sample[[f"union_{c}" for c in classes]].to_numpy(dtype=np.float64),
                  bool(extra.get("include_background", True)))


def sample_fields(per_sample: pd.DataFrame) -> pd.DataFrame:
    """One label column per grouping (and ``video``, the CI unit inside a subject), one row per sample.

    Vectorised: 250,000 names split in well under a second.
    """
    names = per_sample["name"].astype(str).reset_index(drop=True)
    # str.split per name, then one frame: about 4x faster than Series.str.split(expand=True)
    parts = pd.DataFrame([name.split("_", 10) for name in names.tolist()], dtype=object).reindex(columns=range(11))
    parsed = (parts[0] == PREFIX) & parts[9].notna() & parts[2].fillna("").astype(str).str.isdigit()

    def field(position: int) -> pd.Series:
        return parts[position].where(parsed, UNPARSED).fillna(UNKNOWN)

    fields = pd.DataFrame({
        "display": _column(per_sample, "inst").where(lambda s: s != UNKNOWN, field(5)),
        "image_type": field(6),
        "state": field(7),
        "posture": field(8).replace(OLD_POSTURE),
        "direction": field(9),
        "subject": _column(per_sample, "subject"),
    })
    if "on_screen" in per_sample.columns:
        on_screen = per_sample["on_screen"].reset_index(drop=True).astype(str).str.lower()
        fields["gaze_target"] = on_screen.map({"true": "on screen", "false": "off screen", "1": "on screen",
                                               "0": "off screen", "1.0": "on screen", "0.0": "off screen"}
                                              ).fillna(UNKNOWN)
    video = parts[0]
    for position in range(1, 10):
        video = video + "_" + parts[position].fillna("")
    fields["video"] = video.where(parsed, names)
    return fields


def _column(per_sample: pd.DataFrame, column: str) -> pd.Series:
    if column not in per_sample.columns:
        return pd.Series(UNKNOWN, index=range(len(per_sample)))
    values = per_sample[column].reset_index(drop=True)
    return values.where(values.notna() & (values.astype(str) != ""), UNKNOWN).astype(str)


def subject_aliases(subjects: pd.Series) -> dict[str, str]:
    """Subject id -> 'subject 01', ... in sorted id order (``--anonymise-subjects``)."""
    ids = sorted(set(subjects.astype(str)))
    width = max(2, len(str(len(ids))))
    return {s: f"subject {i + 1:0{width}d}" for i, s in enumerate(ids)}


@dataclass(frozen=True)
class GroupSums:
    """Per-group sums of one grouping: labels (G,), sizes (G,), numerators/denominators (G, C)."""

    labels: np.ndarray
    sizes: np.ndarray
    numerators: np.ndarray
    denominators: np.ndarray
    codes: np.ndarray  # (N,) the group of each sample

    @classmethod
    def of(cls, labels: pd.Series | np.ndarray, counts: Counts) -> "GroupSums":
        codes, uniques = pd.factorize(np.asarray(labels, dtype=object), sort=True)
        n_groups = len(uniques)
        return cls(np.asarray(uniques, dtype=object), np.bincount(codes, minlength=n_groups),
                   _sum_by(codes, counts.numerators, n_groups), _sum_by(codes, counts.denominators, n_groups), codes)


def _sum_by(codes: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    return np.stack([np.bincount(codes, weights=values[:, c], minlength=n_groups)
                     for c in range(values.shape[1])], axis=1).reshape(n_groups, values.shape[1])


def parts_and_contributions(sums: GroupSums, counts: Counts) -> tuple[np.ndarray, np.ndarray]:
    """(part, contribution) per group, as ``CONTRIBUTION_RULE`` defines them."""
    total_num, total_den = sums.numerators.sum(axis=0), sums.denominators.sum(axis=0)
    used = counts.used_classes(total_den)
    if not used.any():
        return np.full(len(sums.labels), np.nan), np.full(len(sums.labels), np.nan)
    den = total_den[used]
    ratio = total_num[used] / den
    parts = (sums.numerators[:, used] / den).mean(axis=1)
    contributions = ((sums.numerators[:, used] - sums.denominators[:, used] * ratio) / den).mean(axis=1)
    return parts, contributions


def group_cis(sums: GroupSums, counts: Counts, units: np.ndarray, *, n_boot: int = GROUP_N_BOOT
              ) -> list[tuple[float, float] | None]:
    """Each group's 95 % CI resampling ``units`` (integer codes) inside the group; None under 2 units."""
    n_classes = counts.numerators.shape[1]
    both = np.concatenate([counts.numerators, counts.denominators], axis=1)
    statistic: Callable[[np.ndarray], np.ndarray] = lambda s: np.asarray(  # noqa: E731
        counts.value(s[:, :n_classes], s[:, n_classes:]), dtype=np.float64)
    order = np.argsort(sums.codes, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(sums.sizes)])
    cis: list[tuple[float, float] | None] = []
    for g in range(len(sums.labels)):
        rows = order[bounds[g]:bounds[g + 1]]
        low, high = bootstrap_ci(both[rows], units[rows], statistic, n_boot=n_boot, seed=g)
        cis.append(None if np.isnan(low) else (low, high))
    return cis


def group_breakdown(test: str, per_sample: pd.DataFrame, rule: Threshold, extra: dict[str, Any] | None = None,
                    *, anonymise_subjects: bool = False) -> dict[str, Any]:
    """report.json's ``groups`` of one test: every grouping's table and the groups that matter most."""
    counts = counts_of(test, per_sample, extra)
    fields = sample_fields(per_sample)
    if anonymise_subjects:
        fields["subject"] = fields["subject"].map(subject_aliases(fields["subject"]))
    value = float(counts.value(counts.numerators.sum(axis=0), counts.denominators.sum(axis=0))) \
        if len(per_sample) else float("nan")
    subject_units = pd.factorize(fields["subject"])[0]
    video_units = pd.factorize(fields["video"])[0]
    groupings = []
    for grouping in GROUPINGS:
        if grouping.key not in fields.columns:
            continue
        units = video_units if grouping.key == "subject" else subject_units
        groupings.append(_grouping_table(grouping, fields[grouping.key], counts, units))
    return {
        "value": value,
        "sample_noun": get_test(test).sample_noun,
        "contribution_rule": CONTRIBUTION_RULE,
        "subjects_anonymised": anonymise_subjects,
        "groupings": groupings,
        "top": top_contributors(groupings, value, rule, get_test(test).sample_noun),
    }


def _grouping_table(grouping: Grouping, labels: pd.Series, counts: Counts, units: np.ndarray) -> dict[str, Any]:
    sums = GroupSums.of(labels, counts)
    values = np.atleast_1d(counts.value(sums.numerators, sums.denominators))
    parts, contributions = parts_and_contributions(sums, counts)
    cis = group_cis(sums, counts, units)
    groups = [{"group": str(label), "n": int(n), "value": float(v), "ci95": ci, "part": float(p),
               "contribution": float(c)}
              for label, n, v, ci, p, c in zip(sums.labels, sums.sizes, values, cis, parts, contributions)]
    groups.sort(key=lambda g: (-abs(g["contribution"]) if np.isfinite(g["contribution"]) else 0.0, g["group"]))
    return {"key": grouping.key, "title": grouping.title, "source": grouping.source,
            "ci_unit": "video" if grouping.key == "subject" else "subject", "groups": groups}


def top_contributors(groupings: list[dict[str, Any]], value: float, rule: Threshold, noun: str,
                     n_top: int = N_TOP) -> list[dict[str, Any]]:
    """The groups that make the value worse the most (raise an error, lower a score), over every grouping."""
    worse = 1.0 if rule.direction == "<=" else -1.0
    candidates = [(g, grouping) for grouping in groupings if len(grouping["groups"]) > 1
                  for g in grouping["groups"] if np.isfinite(g["contribution"]) and g["contribution"] * worse > 0]
    candidates.sort(key=lambda pair: -abs(pair[0]["contribution"]))
    return [{"grouping": grouping["key"], "group": g["group"], "n": g["n"], "value": g["value"],
             "contribution": g["contribution"],
             "text": contribution_sentence(g, grouping["title"], value, rule, noun)}
            for g, grouping in candidates[:n_top]]


def contribution_sentence(group: dict[str, Any], title: str, value: float, rule: Threshold, noun: str) -> str:
    """E.g. '19 crops with observer state N (mean 40.12 deg) add 1.70 deg to 9.46 deg'."""
    change = group["contribution"]
    verb = "add" if change > 0 else "take"
    preposition = "to" if change > 0 else "off"
    return (f"{group['n']} {noun} with {title} {group['group']} ({rule.show(group['value'])}) {verb} "
            f"{show_change(rule, abs(change))} {preposition} {rule.show(value)}")


def show_change(rule: Threshold, change: float, *, signed: bool = False) -> str:
    """A difference in the value's unit: '1.70 deg', '3.10 points' (percent values)."""
    if change is None or not np.isfinite(change):
        return "n/a"
    scaled = change * rule.display_scale
    unit = "points" if rule.unit == "%" else rule.unit
    return f"{scaled:+.2f} {unit}" if signed else f"{scaled:.2f} {unit}"


def groups_of(test: str, per_sample: pd.DataFrame | None, details: dict[str, Any], rule: Threshold,
              extra: dict[str, Any] | None, *, anonymise_subjects: bool = False) -> dict[str, Any] | None:
    """A report entry's ``groups``: None without a readable per-sample file (the entry says why) or for a test
    whose value is not a ratio of per-sample sums (it declares no counts in the registry)."""
    if per_sample is None or not details or per_sample.empty or get_test(test).counts is None:
        return None
    try:
        return group_breakdown(test, per_sample, rule, extra, anonymise_subjects=anonymise_subjects)
    except (KeyError, ValueError) as exc:  # a per-sample file the details could read but the groups cannot
        return {"error": f"per_sample.csv: {exc}"}
