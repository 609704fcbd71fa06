"""The report's examples: l2cs crops with the true and predicted gaze arrows, dfer strips of the frames the
model saw, drawn only from the data the run was scored on, embedded in report.html, anonymised on request."""
from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from common.report.examples import PER_KIND, choose_clip_examples, choose_gaze_examples
from dfer.config import DFERConfig
from dfer.examples import TILE, clip_strip
from l2cs.examples import CAPTION_HEIGHT, SCALE, arrow_end, draw_gaze
from tests.hostile_corpus import REPORTS, by_id
from tests.hostile_env import Outcome, run_click, run_nia
from tests.hostile.test_hostile_reports import holds

CASES = by_id(REPORTS)


def test_arrow_end_points_where_the_angles_say():
    assert arrow_end((50, 50), 40, 0.0, 90.0) == pytest.approx((10, 50))      # yaw +90: to the image's left
    assert arrow_end((50, 50), 40, 30.0, 0.0) == pytest.approx((50, 30))      # pitch +30: up by sin(30) * 40
    assert arrow_end((50, 50), 40, 0.0, 0.0) == pytest.approx((50, 50))       # into the camera: a dot


def test_the_drawn_arrows_end_where_the_angles_say():
    crop = np.zeros((36, 60, 3), np.uint8)
    drawn = draw_gaze(crop, truth=(0.0, -90.0), pred=(90.0, 0.0), caption="x")
    assert drawn.shape == (36 * SCALE + CAPTION_HEIGHT, 60 * SCALE, 3)
    picture = drawn[:36 * SCALE].astype(int)
    centre = ((60 * SCALE - 1) / 2, (36 * SCALE - 1) / 2)
    length = 36 * SCALE / 2
    green = np.argwhere((picture[:, :, 1] > 100) & (picture[:, :, 2] < 100))   # truth: to the right
    red = np.argwhere((picture[:, :, 2] > 100) & (picture[:, :, 1] < 100))     # prediction: straight up
    truth_end, pred_end = arrow_end(centre, length, 0.0, -90.0), arrow_end(centre, length, 90.0, 0.0)
    assert green[:, 1].max() == pytest.approx(truth_end[0], abs=3) and abs(green[:, 0].mean() - centre[1]) < 3
    assert red[:, 0].min() == pytest.approx(pred_end[1], abs=3) and abs(red[:, 1].mean() - centre[0]) < 3


def test_the_strip_shows_the_frames_in_order():
    colours = np.arange(16, dtype=np.uint8) * 15
    frames = np.zeros((16, 3, 112, 112), np.uint8)
    frames[:, 0] = colours[:, None, None]                                        # red channel = 15 * t
    strip = clip_strip(frames, "confused")
    assert strip.shape[1] == 16 * TILE
    assert [int(strip[TILE // 2, t * TILE + TILE // 2, 2]) for t in range(16)] == colours.tolist()


def test_worst_median_best_and_the_most_confused_pairs():
    gaze = pd.DataFrame({"error_deg": [5.0, 40.0, 1.0, 9.0, 20.0, 3.0, 7.0], "true_pitch": 0.0, "true_yaw": 0.0,
                         "pred_pitch": 0.0, "pred_yaw": 0.0})
    kinds = {e["row"]: e["kind"] for e in choose_gaze_examples(gaze, [str(i) for i in range(7)])}
    assert kinds == {1: "worst", 4: "worst", 3: "median", 6: "median", 2: "best", 5: "best"} and PER_KIND == 2
    states = pd.DataFrame({"truth": ["F", "F", "F", "S", "S", "N"], "pred": ["N", "N", "F", "D", "S", "N"]})
    chosen = choose_clip_examples(states, list("abcdef"))
    assert [(e["sample"], e["pair_count"]) for e in chosen] == [("a", 2), ("b", 2), ("d", 1)]


@pytest.fixture(scope="module")
def scored(tmp_path_factory) -> dict[str, dict[str, Path]]:
    """Score-only runs of l2cs (every other crop 30 deg off) and dfer (every other clip wrong) with their data."""
    from tests.dfer_fakes import balanced_clips, write_clip_set
    from tests.l2cs_fakes import make_fake_crops

    base = tmp_path_factory.mktemp("examples")
    crops = make_fake_crops(base / "crops", {"test": 12}, width=60, height=36)
    truth = _split(crops)
    pitch = truth["gaze_pitch_deg"] + np.where(np.arange(len(truth)) % 2 == 0, 30.0, 0.0)
    pd.DataFrame({"name": truth["crop_id"], "pitch": pitch, "yaw": truth["gaze_yaw_deg"]}).to_csv(
        base / "gaze.csv", index=False)
    clips = write_clip_set(base / "dfer", balanced_clips({"test": 10}))
    states = _split(clips)
    wrong = [s if i % 2 else ("N" if s != "N" else "F") for i, s in enumerate(states["state"])]
    pd.DataFrame({"name": states["clip_id"], "label": wrong}).to_csv(base / "states.csv", index=False)
    made = {"l2cs": {"data": crops, "predictions": base / "gaze.csv", "names": list(truth["crop_id"]),
                     "module": "l2cs.run_valid_l2cs"},
            "dfer": {"data": clips, "predictions": base / "states.csv", "names": list(states["clip_id"]),
                     "module": "dfer.valid_nia"}}
    import importlib

    for test, inputs in made.items():
        inputs["out"] = base / "results" / test
        outcome = run_click(importlib.import_module(inputs["module"]).cli,
                            ["--data", inputs["data"], "--predictions", inputs["predictions"], "--out",
                             inputs["out"], "--device", "cpu", "--workers", "0"])
        assert outcome.code in (0, 1), outcome.err[-2000:]
    return made


def _split(dataset: Path) -> pd.DataFrame:
    index = pd.read_parquet(dataset / "index.parquet")
    return index[index["split"] == "test"].reset_index(drop=True)


def _report(run: dict[str, Path], out: Path, *extra: str) -> tuple[dict, str]:
    outcome = run_nia("report", run["out"], "--out", out, "--data", run["data"], *extra)
    assert outcome.code in (0, 1), outcome.err[-2000:]
    return json.loads((out / "report.json").read_text())["tests"][0], (out / "report.html").read_text()


def _pictures(html: str) -> list[np.ndarray]:
    found = re.findall(r"<img class='example'[^>]*src='data:image/png;base64,([^']+)'", html)
    return [cv2.imdecode(np.frombuffer(base64.b64decode(b), np.uint8), cv2.IMREAD_COLOR) for b in found]


def test_l2cs_examples_are_drawn_from_the_data_and_embedded(scored, tmp_path):
    entry, html = _report(scored["l2cs"], tmp_path / "r")
    assert [e["kind"] for e in entry["examples"]] == ["worst"] * 2 + ["median"] * 2 + ["best"] * 2
    assert entry["examples"][0]["error_deg"] == max(e["error_deg"] for e in entry["examples"])
    pictures = _pictures(html)
    assert len(pictures) == 6 and all(p is not None and p.shape == (36 * SCALE + CAPTION_HEIGHT, 60 * SCALE, 3)
                                      for p in pictures)
    assert entry["examples"][0]["sample"] in html and "Examples" in (tmp_path / "r" / "report.md").read_text()


def test_without_the_data_the_examples_are_named_and_not_drawn(scored, tmp_path):
    import shutil

    run = {**scored["l2cs"], "data": Path(shutil.copytree(scored["l2cs"]["data"], tmp_path / "crops")),
           "out": tmp_path / "result"}
    outcome = run_click(__import__("l2cs.run_valid_l2cs", fromlist=["cli"]).cli,
                        ["--data", run["data"], "--predictions", run["predictions"], "--out", run["out"],
                         "--device", "cpu", "--workers", "0"])
    assert outcome.code in (0, 1), outcome.err[-2000:]
    shutil.rmtree(run["data"])                       # the index the run recorded is gone
    outcome = run_nia("report", run["out"], "--out", tmp_path / "r")
    assert outcome.code in (0, 1), outcome.err[-2000:]
    report = json.loads((tmp_path / "r" / "report.json").read_text())["tests"][0]
    html = (tmp_path / "r" / "report.html").read_text()
    assert len(report["examples"]) == 6 and not _pictures(html)
    assert "no pictures: the data this run was scored on is not at hand" in html


def test_dfer_strips_have_the_models_frame_count(scored, tmp_path):
    entry, html = _report(scored["dfer"], tmp_path / "r")
    assert entry["examples"] and all(e["truth"] != e["pred"] for e in entry["examples"])
    pictures = _pictures(html)
    assert len(pictures) == len(entry["examples"])
    assert all(p.shape[1] == DFERConfig().frames * TILE for p in pictures)


def test_anonymised_reports_name_no_sample_and_no_subject(scored, tmp_path):
    for test in ("l2cs", "dfer"):
        entry, html = _report(scored[test], tmp_path / test, "--anonymise-subjects")
        text = html + (tmp_path / test / "report.md").read_text() + (tmp_path / test / "report.json").read_text()
        assert _pictures(html) and all(e["sample"].startswith("subject ") for e in entry["examples"])
        leaked = [name for name in scored[test]["names"] if name in text]
        assert not leaked, leaked[:3]


def test_an_example_file_linked_out_of_the_data_folder_is_not_read(scored, tmp_path):
    import shutil

    data = Path(shutil.copytree(scored["l2cs"]["data"], tmp_path / "crops"))
    run = {**scored["l2cs"], "data": data}
    entry, _ = _report(run, tmp_path / "first")
    worst = entry["examples"][0]
    jpg = data / _split(data).set_index("crop_id").loc[_name(run, worst["row"]), "jpg_path"]
    outside = tmp_path / "outside.jpg"
    shutil.move(jpg, outside)
    os.symlink(outside, jpg)
    outcome = run_nia("report", run["out"], "--out", tmp_path / "second", "--data", data)
    html = (tmp_path / "second" / "report.html").read_text()
    assert len(_pictures(html)) == 5                      # the other five are drawn, the linked file is not read
    line = next(part for part in html.split("<figure>") if "refused" in part)
    holds(Outcome(outcome.code, line, ""), CASES["report_example_link"])


def _name(run: dict[str, Path], row: int) -> str:
    return str(pd.read_csv(run["out"] / "per_sample.csv")["name"].iloc[row])


@pytest.mark.slow
def test_the_examples_fit_1280_px_in_a_browser_with_no_broken_image(scored, tmp_path):
    from browser import layout_of

    outcome = run_nia("report", scored["l2cs"]["out"], scored["dfer"]["out"], "--out", tmp_path / "r",
                      "--data", scored["l2cs"]["data"], "--data", scored["dfer"]["data"])
    assert outcome.code in (0, 1), outcome.err[-2000:]
    html = (tmp_path / "r" / "report.html").read_text()
    assert len(_pictures(html)) == 6 + 5
    layout = layout_of(tmp_path / "r" / "report.html", tmp_path)
    assert layout["scroll_width"] <= 1280 and layout["broken"] == 0 and layout["images"] >= 11, layout
    assert any(h.startswith("Examples: worst") for h in layout["headings"]), layout["headings"]
    assert any(h.startswith("Examples: clips") for h in layout["headings"]), layout["headings"]


def test_rit_overlays_are_examples_lowest_miou_first_and_anonymised_on_request(tmp_path):
    import report_fakes

    frame = report_fakes.segmentation_frame()
    frame["overlay"] = ""
    (tmp_path / "rit" / "overlays").mkdir(parents=True)
    for kind, rows in (("worst", (1, 3)), ("median", (4, 6)), ("best", (0, 2))):
        for row in rows:
            frame.loc[row, "overlay"] = f"overlays/{kind}_{frame.loc[row, 'name']}.png"
            cv2.imwrite(str(tmp_path / "rit" / frame.loc[row, "overlay"]), np.full((20, 60, 3), 40 * row, np.uint8))
    report_fakes.write_segmentation(tmp_path / "rit", frame)
    assert run_nia("report", tmp_path / "rit", "--out", tmp_path / "plain").code == 0
    entry = json.loads((tmp_path / "plain" / "report.json").read_text())["tests"][0]
    html = (tmp_path / "plain" / "report.html").read_text()
    assert [e["row"] for e in entry["examples"]][:2] in ([1, 3], [3, 1])  # ir crops: half the iris, lowest first
    assert html.count("class='overlay'") == 6 and entry["examples"][0]["kind"] == "worst"
    outcome = run_nia("report", tmp_path / "rit", "--out", tmp_path / "anon", "--anonymise-subjects")
    assert outcome.code in (0, 1), outcome.err[-2000:]
    text = (tmp_path / "anon" / "report.html").read_text() + (tmp_path / "anon" / "report.json").read_text()
    assert text.count("class='overlay'") == 6 and not [n for n in frame["name"] if n in text]
