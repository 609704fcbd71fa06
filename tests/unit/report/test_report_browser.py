"""report.html in real headless chromium at 1280 px: no broken image, no sideways scroll, every section."""
import pytest

from tests import report_fakes
from tests.browser import layout_of
from common.cli import main
from tests.click_runner import separate_streams_runner

#: Provenance as real runs give it: nested model configs and long unbroken paths.
NESTED = {"model_config": {"backbone": "resnet50", "bins": {"count": 90, "width_deg": 4}, "input": [448, 224]},
          "predictions": {"matched": 240, "keys": {"crop_id": 240}},
          "weights_path": "/data/weights/" + "l2cs_retrained_on_two_million_images_" * 8 + ".safetensors"}


@pytest.mark.slow
def test_the_page_fits_1280_px_with_every_section_and_image(tmp_path, monkeypatch):
    monkeypatch.setenv("NIA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NIA_CODE_VERSION", "v-test")
    dirs = report_fakes.write_all(tmp_path / "results")
    report_fakes.write_gaze(dirs["l2cs"], report_fakes.gaze_frame(), **NESTED)
    out = tmp_path / "report"
    run = separate_streams_runner().invoke(main, ["report", *map(str, dirs.values()), "--out", str(out)])
    assert run.exit_code == 0, run.stdout + run.stderr
    html = (out / "report.html").read_text()
    assert "bins.count: 90<br>" in html and "{'" not in html  # nested provenance as key: value lines
    layout = layout_of(out / "report.html", tmp_path)
    assert layout["scroll_width"] <= 1280, layout
    assert layout["images"] >= 5 and layout["broken"] == 0, layout
    headings = layout["headings"]
    for section in ("Verdicts", "l2cs: mean angular error", "rit: mIoU", "dfer: WAR", "Provenance"):
        assert section in headings, headings
    assert headings.count("Where the error lives") == 3
    assert "By gaze target" in headings and headings.count("By subject") == 3


@pytest.mark.slow
def test_the_comparison_page_fits_1280_px(tmp_path, monkeypatch):
    monkeypatch.setenv("NIA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NIA_CODE_VERSION", "v-test")
    old, new = report_fakes.write_all(tmp_path / "old"), report_fakes.write_all(tmp_path / "new")
    report_fakes.write_state(new["dfer"], report_fakes.state_frame(flip=(1, 2, 3)), **NESTED)
    out = tmp_path / "compare"
    run = separate_streams_runner().invoke(main, ["report", "--compare", str(tmp_path / "old"),
                                                    str(tmp_path / "new"), "--out", str(out)])
    assert run.exit_code == 0, run.stdout + run.stderr
    layout = layout_of(out / "compare.html", tmp_path)
    assert layout["scroll_width"] <= 1280 and layout["broken"] == 0, layout
    for heading in ("Verdicts", "Change by group", "Samples", "Provenance that differs", "Summary"):
        assert heading in layout["headings"], layout["headings"]
    assert [h.split(":")[0] for h in layout["headings"] if h.endswith(")") and ": " in h] == ["l2cs", "rit", "dfer"]
