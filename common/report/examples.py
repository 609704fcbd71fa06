"""Examples a person would look at: the samples behind a test's number, drawn from the data they were scored on.

report.json's ``tests[].examples`` names them (pure functions of per_sample.csv):

* l2cs: the ``PER_KIND`` worst, median and best crops by angular error, each
  with its true and predicted (pitch, yaw) (drawn by `l2cs.examples`: the crop
  with the two gaze arrows);
* dfer: up to ``MAX_CONFUSED`` wrongly classified clips of the most confused
  (truth, prediction) pairs first (drawn by `dfer.examples`: a strip of the
  frames the model saw);
* rit: the overlays the run drew (`ritnet.overlays`: crop | truth |
  prediction, per_sample.csv's ``overlay``), lowest crop mIoU first, up to
  ``MAX_OVERLAYS``, read from the result folder (an overlay named outside it
  is not read).

Each example is ``{kind, row, sample, truth, pred, ...}``: ``row`` is its row
in per_sample.csv and ``sample`` its name, or ``subject NN, row R`` with
``--anonymise-subjects`` (the name carries the subject's id, so neither the
JSON nor the HTML shows it). The l2cs and dfer pictures are drawn only from the data the
run was scored on: the index ``data_check`` found (its SHA-256 is the run's
``manifest_sha256``); a file the index names outside its dataset folder is
refused (`common.containment.inside_folder`), never read. They are embedded
in report.html as PNG, so the page stays one file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import cv2
import numpy as np
import pandas as pd

from common.report.groups import subject_aliases

if TYPE_CHECKING:
    from common.report.result_dir import ResultDir

PER_KIND = 2        # l2cs: 2 worst, 2 median, 2 best crops
MAX_CONFUSED = 6    # dfer: clips shown of the most confused pairs
MAX_OVERLAYS = 6    # rit: overlays shown (the run draws 6: ritnet.overlays.PER_KIND of each kind)


def sample_labels(per_sample: pd.DataFrame, anonymise_subjects: bool) -> list[str]:
    """What the report calls each row: its name, or its subject's alias and its row number."""
    if not anonymise_subjects:
        return per_sample["name"].astype(str).tolist()
    subjects = per_sample["subject"].astype(str) if "subject" in per_sample.columns else \
        pd.Series("unknown", index=per_sample.index)
    aliases = subject_aliases(subjects)
    return [f"{aliases[s]}, row {i}" for i, s in enumerate(subjects)]


def choose_gaze_examples(per_sample: pd.DataFrame, labels: list[str]) -> list[dict[str, Any]]:
    """The ``PER_KIND`` worst, median and best crops by angular error (ties by row), worst first."""
    errors = per_sample["error_deg"].to_numpy(dtype=np.float64)
    order = np.argsort(-np.nan_to_num(errors, nan=-1.0), kind="stable")
    n = len(order)
    middle = max(0, n // 2 - PER_KIND // 2)
    picks = [("worst", range(min(PER_KIND, n))), ("median", range(middle, min(n, middle + PER_KIND))),
             ("best", range(n - 1, max(-1, n - 1 - PER_KIND), -1))]
    chosen: dict[int, str] = {}
    for kind, positions in picks:
        for position in positions:
            chosen.setdefault(int(order[position]), kind)
    columns = per_sample[["true_pitch", "true_yaw", "pred_pitch", "pred_yaw"]].to_numpy(dtype=np.float64)
    return [{"kind": kind, "row": row, "sample": labels[row], "truth": columns[row, :2].tolist(),
             "pred": columns[row, 2:].tolist(), "error_deg": float(errors[row])} for row, kind in chosen.items()]


def choose_clip_examples(per_sample: pd.DataFrame, labels: list[str]) -> list[dict[str, Any]]:
    """Up to ``MAX_CONFUSED`` wrong clips: the most frequent (truth, prediction) pair first, then by row."""
    truth, pred = per_sample["truth"].astype(str).to_numpy(), per_sample["pred"].astype(str).to_numpy()
    wrong = np.flatnonzero(truth != pred)
    pairs = pd.Series(list(zip(truth[wrong], pred[wrong])), dtype=object)
    sizes = pairs.map(pairs.value_counts()).to_numpy() if len(wrong) else np.empty(0)
    order = sorted(range(len(wrong)), key=lambda i: (-sizes[i], truth[wrong[i]], pred[wrong[i]], wrong[i]))
    return [{"kind": "confused", "row": int(wrong[i]), "sample": labels[int(wrong[i])], "truth": truth[wrong[i]],
             "pred": pred[wrong[i]], "pair_count": int(sizes[i])} for i in order[:MAX_CONFUSED]]


def overlay_rows(per_sample: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(rows of per_sample.csv naming an overlay, lowest crop mIoU first, up to ``MAX_OVERLAYS``; their mIoU)."""
    from common.metrics.segmentation import count_classes, miou_from_counts

    if "overlay" not in per_sample.columns:
        return np.empty(0, np.int64), np.empty(0)
    classes = count_classes(per_sample.columns)
    named = np.flatnonzero((per_sample["overlay"].notna() & (per_sample["overlay"].astype(str) != "")).to_numpy())
    rows = per_sample.iloc[named]
    inter = rows[[f"inter_{c}" for c in classes]].to_numpy(dtype=float)
    union = rows[[f"union_{c}" for c in classes]].to_numpy(dtype=float)
    with np.errstate(all="ignore"):
        score = np.nan_to_num(np.asarray(miou_from_counts(inter, union), dtype=np.float64).reshape(-1), nan=1.0)
    order = np.argsort(score, kind="stable")[:MAX_OVERLAYS]
    return named[order], score[order]


def choose_overlay_examples(per_sample: pd.DataFrame, labels: list[str]) -> list[dict[str, Any]]:
    """The run's overlays, lowest crop mIoU first; ``kind`` from the file name the run gave it."""
    rows, scores = overlay_rows(per_sample)
    kinds = [Path(str(per_sample["overlay"].iloc[r])).name.split("_", 1)[0] for r in rows]
    return [{"kind": kind if kind in ("worst", "median", "best") else "overlay", "row": int(r),
             "sample": labels[r], "miou": float(score)} for r, kind, score in zip(rows, kinds, scores)]


def example_kind(test: str) -> "ExampleKind | None":
    """The registry's examples of ``test`` (None for a test that declares none)."""
    from common.suite.registry import get_test, hook

    named = get_test(test).examples
    return None if named is None else hook(named)


def choose_examples(test: str, per_sample: pd.DataFrame | None, *, anonymise_subjects: bool = False
                    ) -> list[dict[str, Any]] | None:
    """report.json's ``examples`` of a test entry; None without readable rows."""
    kind = example_kind(test)
    if kind is None or per_sample is None or per_sample.empty:
        return None
    try:
        return kind.choose(per_sample, sample_labels(per_sample, anonymise_subjects))
    except (KeyError, ValueError, TypeError):  # not this test's columns: the entry's problems say so
        return None


@dataclass(frozen=True)
class ExampleSource:
    """Where a test's example files are: its split reader, the index's id column and file column,
    the folder those files must stay inside, and the test's drawer of its pictures."""

    read: Callable[[Path, str], Any]
    key: str
    file_column: str
    root: Callable[[Path], Path]
    draw: Callable[..., list[Any]]


def _read_eye_crops(folder: Path, split: str) -> Any:
    from l2cs.dataset import read_eye_crops

    return read_eye_crops(folder, split)


def _read_state_clips(folder: Path, split: str) -> Any:
    from dfer.dataset import read_state_clips

    return read_state_clips(folder, split)


def _draw_gaze_examples(*args: Any) -> list[Any]:
    from l2cs.examples import draw_gaze_examples

    return draw_gaze_examples(*args)


def _draw_clip_examples(*args: Any) -> list[Any]:
    from dfer.examples import draw_clip_examples  # imports torch: only when a dfer report has its data

    return draw_clip_examples(*args)


def _video_root(folder: Path) -> Path:
    from common.targets.clip_index import video_root

    return Path(video_root(folder, None))


def _same_folder(folder: Path) -> Path:
    return folder


@dataclass(frozen=True)
class ExampleKind:
    """A test's examples (named by its registry entry): the heading, the chooser ``(per_sample, labels) ->
    examples``, and where the pictures come from (None: the overlays the run wrote in its result folder)."""

    title: str
    choose: Callable[[pd.DataFrame, list[str]], list[dict[str, Any]]]
    source: ExampleSource | None


GAZE_EXAMPLES = ExampleKind(
    "Examples: worst, median and best crops (green: true gaze, red: predicted)", choose_gaze_examples,
    ExampleSource(_read_eye_crops, "crop_id", "jpg_path", _same_folder, _draw_gaze_examples))
OVERLAY_EXAMPLES = ExampleKind(
    "Example overlays: lowest crop mIoU first (crop | truth | prediction)", choose_overlay_examples, None)
CLIP_EXAMPLES = ExampleKind(
    "Examples: clips of the most confused classes (the frames the model saw)", choose_clip_examples,
    ExampleSource(_read_state_clips, "clip_id", "video_file", _video_root, _draw_clip_examples))


def example_pictures(entry: dict[str, Any], result_dir: ResultDir | None) -> tuple[list[bytes | str], str | None]:
    """(per example: its PNG, or why none was drawn; None, or why no example was drawn at all)."""
    if not entry.get("examples") or result_dir is None or result_dir.per_sample is None:
        return [], None
    kind = example_kind(entry["test"])
    if kind is None:
        return [], None
    if kind.source is None:
        return overlay_pictures(entry, result_dir), None
    return data_pictures(entry, result_dir, kind.source)


def overlay_pictures(entry: dict[str, Any], result_dir: ResultDir) -> list[bytes | str]:
    """The overlay PNGs the run wrote, read only from inside its result folder."""
    from common.containment import inside_folder

    assert result_dir.per_sample is not None
    pictures: list[bytes | str] = []
    for example in entry["examples"]:
        row = int(example["row"])
        name = str(result_dir.per_sample["overlay"].iloc[row])
        anonymised = example["sample"] != str(result_dir.per_sample["name"].iloc[row])
        shown = example["sample"] if anonymised else name   # the file name carries the subject's id
        path = inside_folder(result_dir.directory, name)
        if path is None:
            pictures.append(f"overlay {shown} named in per_sample.csv lies outside the result folder: not shown")
        elif not path.is_file():
            pictures.append(f"overlay {shown} named in per_sample.csv is missing")
        else:
            pictures.append(path.read_bytes())
    return pictures


def data_pictures(entry: dict[str, Any], result_dir: ResultDir, source: ExampleSource
                  ) -> tuple[list[bytes | str], str | None]:
    """The l2cs and dfer pictures, drawn from the data the run was scored on (see the module docstring)."""
    examples = entry["examples"]
    assert result_dir.per_sample is not None
    index = (entry.get("data_check") or {}).get("index")
    if not (entry.get("data_check") or {}).get("checked") or not index:
        return [], ("no pictures: the data this run was scored on is not at hand (give nia report --data the "
                    "crop or clip folder)")
    folder = Path(index).parent
    split = str((entry.get("extra") or {}).get("split") or (entry.get("provenance") or {}).get("split") or "test")
    try:
        rows = source.read(folder, split).rows
        root = source.root(folder)
    except (OSError, ValueError, KeyError) as exc:
        return [], f"no pictures: {index}: cannot read split {split!r}: {exc}"
    by_key = rows.assign(_key=rows[source.key].astype(str)).drop_duplicates("_key").set_index("_key")
    names = result_dir.per_sample["name"].astype(str)
    pictures: list[bytes | str] = ["" for _ in examples]
    drawable = []
    for i, example in enumerate(examples):
        name = names.iloc[int(example["row"])] if 0 <= int(example["row"]) < len(names) else None
        if name is None or name not in by_key.index:
            pictures[i] = "not in the data's split"
        elif not _inside(root, str(by_key.loc[name, source.file_column])):
            pictures[i] = "its file lies outside the dataset folder: refused"
        else:
            drawable.append((i, name))
    if drawable:
        drawn = source.draw([examples[i] for i, _ in drawable], by_key.loc[[n for _, n in drawable]], root,
                            entry.get("provenance"))
        for (i, _), image in zip(drawable, drawn):
            pictures[i] = image if isinstance(image, str) else _png(image)
    return pictures, None


def _inside(root: Path, file: str) -> bool:
    """``file`` (relative to ``root``, or absolute) lies inside ``root``, symbolic links followed."""
    from common.containment import inside_folder

    relative = os.path.relpath(file, root) if os.path.isabs(file) else file
    return inside_folder(root, relative) is not None


def _png(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("an example picture could not be encoded as PNG")
    return encoded.tobytes()


def _caption(example: dict[str, Any]) -> str:
    if "miou" in example:
        return f"{example['kind']}: {example['sample']}: crop mIoU {100 * example['miou']:.1f} %"
    if "error_deg" in example:
        truth, pred = (f"({a:.1f}, {b:.1f})" for a, b in (example["truth"], example["pred"]))
        return f"{example['kind']}: {example['sample']}: {example['error_deg']:.2f} deg; truth {truth}, " \
               f"predicted {pred} (pitch, yaw deg)"
    return f"{example['kind']}: {example['sample']}: truth {example['truth']}, predicted {example['pred']} " \
           f"({example['pair_count']} clips {example['truth']} -> {example['pred']})"


def examples_html(entry: dict[str, Any], result_dir: ResultDir | None, img: Callable[..., str],
                  escape: Callable[[Any], str]) -> list[str]:
    """The HTML of a test's examples: one picture per example with its caption."""
    examples = entry.get("examples")
    if not examples:
        return []
    pictures, note = example_pictures(entry, result_dir)
    kind = example_kind(entry["test"])
    parts = [f"<h3>{escape(kind.title if kind else 'Examples')}</h3>"]
    if note:
        parts.append(f"<p class='note'>{escape(note)}</p>")
    for i, example in enumerate(examples):
        picture = pictures[i] if i < len(pictures) else ""
        css_class = "overlay" if kind is not None and kind.source is None else "example"
        shown = img(picture, css_class=css_class, title=_caption(example)) if isinstance(picture, bytes) else \
            (f"<span class='note'>({escape(picture)})</span>" if picture else "")
        parts.append(f"<figure>{shown}<figcaption>{escape(_caption(example))}</figcaption></figure>")
    return parts


def examples_markdown(entry: dict[str, Any]) -> list[str]:
    """The Markdown of a test's examples: one line each (the pictures are in report.html)."""
    examples = entry.get("examples")
    if not examples:
        return []
    return ["### Examples (pictures in report.html)", "", *(f"- {_caption(e)}" for e in examples), ""]
