"""The one registry of acceptance tests: each test is declared here once.

An ``AcceptanceTest`` says everything the suite knows of one test: its key
(as in metrics.json), its image, code folder, entry point, weights file, demo
data and training script (the Makefile, docker-compose.yml, .env.example,
the Dockerfile's table and .ci/run are checked against these by
tests/unit/suite/test_registry.py), its metric and direction (thresholds.json holds
the numbers; ``load_thresholds`` refuses an entry that disagrees), the
per-sample columns ``write_results`` requires, and the hooks the report calls
for it: the scorer (per_sample.csv -> the value and its details, which the
report recomputes), the problems peculiar to its per-sample file, its HTML
section, its group counts, its changes between two runs and the reader of
its submitted predictions.

Hooks are ``"module:attribute"`` strings resolved on use (``hook``), so this
module imports neither torch nor the report. ``get_test`` refuses an unknown
key in one line; nothing falls back to another test. More tests are added
with ``register`` (a plugin module named in ``$NIA_TEST_PLUGINS``, comma
separated, is imported when this module is, and calls it); see
docs/architecture.md and tests/e2e/test_fourth_test.py.
"""
from __future__ import annotations

import importlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

PLUGINS_ENV = "NIA_TEST_PLUGINS"
DIRECTIONS = ("<=", ">=")


@dataclass(frozen=True)
class AcceptanceTest:
    """One acceptance test, declared once.

    Attributes:
        key: the test key (l2cs, rit, dfer), as in metrics.json and the Makefile.
        title: what people call it, e.g. 'L2CS-Net gaze'.
        image: the image name, that of the official delivery.
        code_dir: the test's source folder, copied into its image only.
        entry: the validation script the image runs.
        weights_file: the file name the image reads in /weights.
        demo_data: the synthetic input `make demo-data` writes, under the build folder (what /data gets).
        train_script: writes the demo weights (best.pt) with `--preset demo`.
        metric: the metric name in metrics.json and thresholds.json.
        direction: '<=' (lower is better) or '>='.
        required_columns: columns its per_sample.csv must have.
        scorer: ``(per_sample, extra) -> details`` with ``recomputed_value``: the value from per_sample.csv.
        section: ``(entry, result_dir, details) -> [html parts]``: its plots in report.html.
        problems: ``(result, per_sample) -> [problem lines]``: checks peculiar to its per-sample file.
        counts: ``(per_sample, extra) -> groups.Counts``: the additive counts behind the value (group tables).
        changes: ``(both) -> dict``: what moved between two runs (`nia report compare`); None: names only.
        data_check: how `nia report --data` rechecks it against the data (a data_check spec); None: not checked.
        predictions_reader: the reader of a submitted predictions file (``--predictions``).
        sample_noun: what one sample is, in the report's words.
        thresholds_file: the JSON file holding its rule (keyed by ``key``); None: common/data/thresholds.json.
        extras: ``(report key, hook)`` pairs: more report sections, each ``(per_sample, rule, entry) -> value``.
        examples: the ``common.report.examples.ExampleKind`` that picks and draws its example pictures; None: none.
    """

    key: str
    title: str
    image: str
    code_dir: str
    entry: str
    weights_file: str
    demo_data: str
    train_script: str
    metric: str
    direction: str
    required_columns: tuple[str, ...]
    scorer: str
    section: str
    problems: tuple[str, ...] = ()
    counts: str | None = None
    changes: str | None = None
    data_check: str | None = None
    predictions_reader: str | None = None
    sample_noun: str = "samples"
    thresholds_file: str | None = None
    extras: tuple[tuple[str, str], ...] = field(default=())
    examples: str | None = None

    @property
    def test(self) -> str:
        """The key (the name the suite's container code uses)."""
        return self.key

    def entry_missing(self, repo: Path) -> str | None:
        """The one-line reason this test cannot run from `repo` (its entry point has not landed), else None."""
        if (repo / self.entry).is_file():
            return None
        return f"{self.entry} not found: the {self.key} entry point is not in this checkout yet"

    def demo_weights(self, build: Path) -> Path:
        return build / "weights" / f"{self.key}_demo.pt"

    def score(self, per_sample: Any, extra: Mapping[str, Any] | None) -> dict[str, Any]:
        """Its scorer's details of ``per_sample`` (``recomputed_value`` among them)."""
        return hook(self.scorer)(per_sample, dict(extra or {}))


def hook(path: str) -> Callable[..., Any]:
    """The object a ``"module:attribute"`` string names (imported now)."""
    module, _, attribute = path.partition(":")
    if not module or not attribute:
        raise ValueError(f"hook {path!r}; expected 'module:attribute'")
    return getattr(importlib.import_module(module), attribute)


def _report_hooks(kind: str) -> dict[str, str]:
    """The scorer, section, counts and changes the report modules define for one kind of value (gaze,
    segmentation, state), each under the kind's name."""
    return {"scorer": f"common.report.scorers:{kind}", "section": f"common.report.sections:{kind}",
            "counts": f"common.report.groups:{kind}_counts", "changes": f"common.report.compare:{kind}_changes"}


_BUILTIN = (
    AcceptanceTest(
        key="l2cs", title="L2CS-Net gaze", image="nia_demo_l2cs", code_dir="l2cs", entry="l2cs/run_valid_l2cs.py",
        weights_file="l2cs.pt", demo_data="crops", train_script="l2cs/train.py",
        metric="mean_angular_error_deg", direction="<=",
        required_columns=("name", "subject", "inst", "pred_pitch", "pred_yaw", "true_pitch", "true_yaw", "error_deg"),
        problems=("common.report.checks:gaze_row_problems",),
        **_report_hooks("gaze"),
        data_check="common.report.data_check:GAZE_CROPS",
        predictions_reader="common.verdicts.submissions:read_gaze_predictions", sample_noun="crops",
        extras=(("sensitivity", "common.report.scorers:gaze_sensitivity"),),
        examples="common.report.examples:GAZE_EXAMPLES",
    ),
    AcceptanceTest(
        key="rit", title="RIT-Net segmentation", image="nia_demo_rit", code_dir="ritnet", entry="ritnet/test.py",
        weights_file="ritnet.pt", demo_data="crops", train_script="ritnet/train.py",
        metric="miou", direction=">=", required_columns=("name", "subject", "inst", "inter_*", "union_*"),
        problems=("common.report.checks:segmentation_class_problems",),
        **_report_hooks("segmentation"),
        data_check="common.report.data_check:SEGMENTATION_CROPS",
        predictions_reader="common.verdicts.submissions:find_segmentation_predictions", sample_noun="eye crops",
        examples="common.report.examples:OVERLAY_EXAMPLES",
    ),
    AcceptanceTest(
        key="dfer", title="Former-DFER observer state", image="nia_demo_dfer", code_dir="dfer",
        entry="dfer/valid_nia.py", weights_file="dfer.pt", demo_data="synth_dfer", train_script="dfer/train.py",
        metric="war", direction=">=", required_columns=("name", "subject", "inst", "pred", "truth"),
        problems=("common.report.checks:state_class_problems",),
        **_report_hooks("state"),
        data_check="common.report.data_check:STATE_CLIPS",
        predictions_reader="common.verdicts.submissions:read_state_predictions", sample_noun="clips",
        extras=(("sensitivity", "common.report.scorers:region_sensitivity"),),
        examples="common.report.examples:CLIP_EXAMPLES",
    ),
)

#: key -> test, in the suite's order (the report's, the Makefile's TESTS).
REGISTRY: dict[str, AcceptanceTest] = {test.key: test for test in _BUILTIN}
BUILTIN_KEYS = tuple(test.key for test in _BUILTIN)


def get_test(key: str) -> AcceptanceTest:
    """The registered test ``key``; ValueError in one line for any other."""
    try:
        return REGISTRY[key]
    except (KeyError, TypeError):
        raise ValueError(f"test {key!r} is not a registered acceptance test; expected one of "
                         f"{', '.join(REGISTRY)}") from None


def tests() -> tuple[AcceptanceTest, ...]:
    """Every registered test, in order."""
    return tuple(REGISTRY.values())


def register(test: AcceptanceTest) -> AcceptanceTest:
    """Add ``test`` after the others; ValueError for a key already taken or a malformed declaration."""
    if not test.key.isidentifier() or test.key in REGISTRY:
        raise ValueError(f"cannot register test {test.key!r}: "
                         f"{'the key is taken' if test.key in REGISTRY else 'expected an identifier key'}")
    if test.direction not in DIRECTIONS:
        raise ValueError(f"test {test.key}: direction is {test.direction!r}; expected '<=' or '>='")
    REGISTRY[test.key] = test
    return test


def unregister(key: str) -> None:
    """Remove a test added with ``register`` (the built-in ones stay)."""
    if key in BUILTIN_KEYS:
        raise ValueError(f"test {key!r} is built in; it cannot be unregistered")
    REGISTRY.pop(key, None)


class _Keys(Sequence[str]):
    """The registered keys, always current (``TESTS`` of the older modules)."""

    def __getitem__(self, index: Any) -> Any:
        return tuple(REGISTRY)[index]

    def __len__(self) -> int:
        return len(REGISTRY)

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(REGISTRY))

    def __contains__(self, key: object) -> bool:
        return key in REGISTRY

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, (tuple, list, _Keys)) else other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(tuple(self))


class _Columns(Mapping[str, tuple[str, ...]]):
    """key -> required per-sample columns, always current (``REQUIRED_COLUMNS``)."""

    def __getitem__(self, key: str) -> tuple[str, ...]:
        return get_test(key).required_columns

    def __len__(self) -> int:
        return len(REGISTRY)

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(REGISTRY))


KEYS: Sequence[str] = _Keys()
REQUIRED_COLUMNS: Mapping[str, tuple[str, ...]] = _Columns()


def missing_columns(key: str, columns: Sequence[Any]) -> list[str]:
    """The required columns of test ``key`` that ``columns`` lacks; ``prefix_*`` needs one column of that prefix."""
    names = [str(c) for c in columns]
    missing = []
    for required in get_test(key).required_columns:
        if required.endswith("*"):
            if not any(name.startswith(required[:-1]) for name in names):
                missing.append(required.replace("*", "<class>"))
        elif required not in names:
            missing.append(required)
    return missing


def _load_plugins() -> None:
    """Import each module ``$NIA_TEST_PLUGINS`` names (they call ``register``)."""
    for name in filter(None, (part.strip() for part in os.environ.get(PLUGINS_ENV, "").split(","))):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ImportError(f"${PLUGINS_ENV} names {name!r}, which cannot be imported: {exc}") from exc


_load_plugins()
