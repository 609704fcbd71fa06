"""The msgspec fast path of `nia index` gives exactly the rows of the precise checker.

Every label is run both ways: ``parse_one(fast=True)`` (msgspec, falling back
to common.delivery.labels on anything it does not accept) and ``parse_one(fast=False)``
(common.delivery.labels only). Whole manifests are compared too, with the fast path
switched off by patching it to always decline.
"""
import copy
import json
import random

import pandas as pd
import pytest

import common.delivery.manifest.workers as manifest_workers
from common.delivery.label_columns import frame_columns
from common.delivery.manifest import build_index, parse_one, read_manifest
from tests.conftest import PUBLISHED_EXAMPLE_TEXT, make_label_dict, png_bytes
from tests.paths import FIXTURES

CORPUS_DIR = FIXTURES / "labels"
STEM = "NIA22EYE_S1_001_T1_S10_S_rgb_F_D_L_232"


def both_ways(tmp_path, data: bytes, stem: str = STEM) -> tuple[tuple, tuple, bool]:
    """(fast row, slow row, whether the fast path itself accepted the label); rows are
    (size, mtime_ns, *label columns, mismatch, label error)."""
    (tmp_path / f"{stem}.json").write_bytes(data)
    root = f"{tmp_path}/"
    fast = parse_one(root, f"{stem}.json", False, fast=True)
    slow = parse_one(root, f"{stem}.json", False, fast=False)
    return fast, slow, frame_columns(data, stem) is not None


def dumps(label: dict) -> bytes:
    return json.dumps(label).encode("utf-8")


# --- hand-picked cases ----------------------------------------------------------

def test_published_example_takes_the_fast_path_with_identical_values(tmp_path):
    fast, slow, accepted = both_ways(tmp_path, PUBLISHED_EXAMPLE_TEXT.encode("utf-8"))
    assert accepted and fast == slow
    assert fast[:2] == (len(PUBLISHED_EXAMPLE_TEXT.encode("utf-8")), (tmp_path / f"{STEM}.json").stat().st_mtime_ns)
    assert fast[2:7] == ("S", "rgb", "F", "D", "001")
    assert fast[-2:] == ("", "")  # no mismatch, no error
    columns = dict(zip([name for name, _ in manifest_workers.LABEL_FIELDS], fast[2:]))
    assert (columns["r_iris_cx"], columns["r_iris_rx"], columns["l_center_x"]) == (1021.5, 12.5, 890.0)
    assert list(columns["r_eyelid"][:2]) == [(994.0, 298.0), (998.0, 299.0)]


@pytest.mark.parametrize("variant", ["annatations", "root_sections", "bom", "no_rotate_no_points",
                                     "missing_eyes", "shuffled", "extra_keys", "int_and_float"])
def test_accepted_variations_take_the_fast_path(tmp_path, variant):
    d = make_label_dict()
    a = d["Annotations"]
    data = None
    if variant == "annatations":
        a["annatations"] = a.pop("annotations")
    elif variant == "root_sections":
        d["pose"], d["distance"] = a.pop("pose"), a.pop("distance")
    elif variant == "bom":
        data = b"\xef\xbb\xbf" + PUBLISHED_EXAMPLE_TEXT.encode("utf-8")
    elif variant == "no_rotate_no_points":
        del a["annotations"][0]["rotate"], a["annotations"][0]["points"]
    elif variant == "missing_eyes":
        a["annotations"] = [s for s in a["annotations"] if s["label"] not in ("l_iris", "r_eyelid", "r_center")]
    elif variant == "shuffled":
        a["annotations"].reverse()
    elif variant == "extra_keys":
        a["comment"] = {"x": [1, 2]}
        a["annotations"][2]["score"] = 0.5
    else:
        a["distance"] = {"cam": 53.25, "display": 0}
    fast, slow, accepted = both_ways(tmp_path, data or dumps(d))
    assert accepted and fast == slow and slow[-1] == ""


@pytest.mark.parametrize("variant,mismatch", [
    ("state", "state: name F, json N"),
    ("name", f"name: file {STEM}, json other.png"),
])
def test_name_mismatch_is_worded_as_the_precise_path(tmp_path, variant, mismatch):
    d = make_label_dict(condition="N") if variant == "state" else make_label_dict(name="other.png")
    fast, slow, accepted = both_ways(tmp_path, dumps(d))
    assert accepted and fast == slow and fast[-2] == mismatch


def test_odd_file_names_fall_back_and_agree(tmp_path):
    for stem in ("plain_name", "NIA22EYE_S1_001_T1_S10_S_rgb_F_D_L_232.png", "NIA22EYE_S1_001_T1_S10_S_rgb_F_K_L_2"):
        fast, slow, _ = both_ways(tmp_path, PUBLISHED_EXAMPLE_TEXT.encode("utf-8"), stem)
        assert fast == slow
    fast, _, _ = both_ways(tmp_path, PUBLISHED_EXAMPLE_TEXT.encode("utf-8"), "plain_name")
    assert fast[-2].startswith("name: 'plain_name': expected 10 (video) or 11 (frame)")


@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS_DIR.glob("*.json") if p.name != "cases.json"))
def test_malformed_corpus_is_declined_and_gets_the_precise_error(tmp_path, name):
    data = (CORPUS_DIR / name).read_bytes()
    fast, slow, accepted = both_ways(tmp_path, data)
    assert fast == slow
    if slow[-1]:  # invalid: the fast path must not have accepted it
        assert not accepted
        assert slow[-1].startswith(f"{STEM}.json: ")


def test_huge_integer_is_an_error_not_a_crash(tmp_path):
    d = make_label_dict()
    text = dumps(d).replace(b'"point": [1913, 1076]', b'"point": [1' + b"0" * 400 + b", 1076]")
    fast, slow, accepted = both_ways(tmp_path, text)
    assert not accepted and fast == slow
    assert slow[-1].endswith("Annotations.pose.point[0]: expected a finite number, got an integer too large for a float")


# --- randomised labels -------------------------------------------------------------

BAD_VALUES = [None, True, "1", "", [], {}, -1, 0, 1.5, "x", [1], [1, 2], [1, 2, 3], "S", "ir", "001", "١٢٣"]


def mutate(rng: random.Random, label: dict) -> dict:
    """One to three random edits: a removed key, a wrong value, a moved section, a duplicate shape..."""
    d = copy.deepcopy(label)
    a = d["Annotations"]
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(9)
        shapes = a.get("annotations") or []
        if op == 0:
            key = rng.choice(list(a))
            del a[key]
        elif op == 1:
            a[rng.choice(["name", "inst", "image", "condition", "posture", "metaid"])] = rng.choice(BAD_VALUES)
        elif op == 2 and shapes:
            shape = rng.choice(shapes)
            shape[rng.choice(["label", "shape", "cx", "cy", "rx", "ry", "rotate", "points"])] = rng.choice(BAD_VALUES)
        elif op == 3 and shapes:
            shape = rng.choice(shapes)
            if shape.get("points"):
                pt = rng.choice(shape["points"])
                if isinstance(pt, list) and pt:
                    pt[rng.randrange(len(pt))] = rng.choice(BAD_VALUES + [1e308 * 10 if rng.random() < 0.2 else -0.0])
        elif op == 4 and shapes:
            shapes.append(copy.deepcopy(rng.choice(shapes)))
        elif op == 5 and "pose" in a:
            d["pose"] = a.pop("pose") if rng.random() < 0.7 else copy.deepcopy(a["pose"])
        elif op == 6 and "distance" in a:
            a["distance"][rng.choice(["cam", "display"])] = rng.choice([-1, 0, 2.5, None, "53"])
        elif op == 7 and "annotations" in a:
            a["annatations"] = a.pop("annotations") if rng.random() < 0.7 else copy.deepcopy(a["annotations"])
        elif op == 8 and "pose" in a and isinstance(a["pose"], dict):
            part = rng.choice(["head", "cam", "point"])
            a["pose"][part] = rng.choice([[1, 2], [1, 2, 3], [1.5, "2", 3], [0.1, 0.2, 0.3], None])
    return d


def random_labels(n: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        d = make_label_dict(condition=rng.choice("FSDAN"), posture=rng.choice("SDPLFCHETU"))
        for shape in d["Annotations"]["annotations"]:
            shape["points"] = [[x + rng.choice([0, 0.5, 1]), y] for x, y in shape["points"]]
        if i % 3:  # two in three are broken somehow
            d = mutate(rng, d)
        text = json.dumps(d, indent=rng.choice([None, 2])).encode("utf-8")
        if i % 17 == 0:
            text = text.replace(b"1913", b"NaN") if i % 2 else b"\xef\xbb\xbf" + text
        out.append(text)
    return out


def test_random_labels_agree_row_for_row(tmp_path):
    n_valid = n_fast = 0
    for data in random_labels(300):
        fast, slow, accepted = both_ways(tmp_path, data)
        assert fast == slow, data
        if accepted:
            assert slow[-1] == "", data  # the fast path never accepts what the precise one rejects
            n_fast += 1
        n_valid += slow[-1] == ""
    assert n_fast == n_valid  # and, for these labels, accepts every valid one
    assert 100 < n_valid < 250  # the mix really has both kinds


def test_whole_manifest_is_identical_with_and_without_the_fast_path(tmp_path, monkeypatch):
    root = tmp_path / "tree"
    root.mkdir()
    labels = random_labels(120, seed=11) + [(CORPUS_DIR / p.name).read_bytes()
                                           for p in sorted(CORPUS_DIR.glob("*.json"))]
    for i, data in enumerate(labels):
        stem = f"NIA22EYE_S1_001_T1_S10_S_rgb_F_D_L_{i}" if i % 5 else f"other_{i}"
        (root / f"{stem}.json").write_bytes(data)
        if i % 4:
            (root / f"{stem}.png").write_bytes(png_bytes(1920, 1080))  # a sound header: validity is the label's
    (root / "NIA22EYE_S1_001_T1_S10_S_rgb_F_D_L.mp4").write_bytes(b"")
    (root / "NIA22EYE_S1_001_T1_S10_S_rgb_F_D_L.json").write_bytes(PUBLISHED_EXAMPLE_TEXT.encode("utf-8"))
    build_index(root, tmp_path / "fast.parquet", workers=2, chunk=16)
    monkeypatch.setattr(manifest_workers, "frame_columns", lambda data, stem: None)
    build_index(root, tmp_path / "slow.parquet", workers=1)
    fast, slow = read_manifest(tmp_path / "fast.parquet")[0], read_manifest(tmp_path / "slow.parquet")[0]
    pd.testing.assert_frame_equal(fast, slow)
    assert fast["valid"].sum() > 40 and (~fast["valid"]).sum() > 40
    video = fast.set_index("sample_id").loc["NIA22EYE_S1_001_T1_S10_S_rgb_F_D_L"]
    assert video["kind"] == "video" and "Annotations.fps: required field is missing" in video["error"]
