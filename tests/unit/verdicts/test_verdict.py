"""Thresholds file, overrides and the pass/fail rule."""
import json
import math

import pytest

from common.verdicts.thresholds import load_thresholds, threshold_for


def test_packaged_thresholds_hold_the_official_numbers():
    rules = load_thresholds()
    assert (rules["l2cs"].threshold, rules["l2cs"].official, rules["l2cs"].direction) == (10.0, 4.6, "<=")
    assert (rules["rit"].threshold, rules["rit"].official, rules["rit"].direction) == (0.80, 0.80, ">=")
    assert (rules["dfer"].threshold, rules["dfer"].official) == (0.70, 0.7132)
    assert rules["dfer"].show(0.7132) == "71.32 %"
    assert rules["l2cs"].show(10.0, compact=True) == "10 deg"


def test_pass_fail_at_and_around_the_threshold():
    l2cs, rit = threshold_for("l2cs"), threshold_for("rit")
    assert l2cs.passes(10.0) and not l2cs.passes(10.0001)
    assert rit.passes(0.80) and not rit.passes(0.7999)
    assert not l2cs.passes(math.nan) and not rit.passes(math.nan)
    assert l2cs.comparison(12.0) == ">" and rit.comparison(0.5) == "<"


def test_override_file_changes_only_its_keys(tmp_path):
    override = tmp_path / "t.json"
    override.write_text(json.dumps({"rit": {"threshold": 0.75}}))
    rit = threshold_for("rit", override)
    assert rit.threshold == 0.75 and rit.official == 0.80 and rit.metric == "miou"


@pytest.mark.parametrize(
    "content, message",
    [
        ({"gaze": {"threshold": 1}}, "key 'gaze'"),
        ({"rit": {"direction": "<"}}, "rit.direction"),
        ({"rit": {"threshold": "high"}}, "rit.threshold"),
    ],
)
def test_bad_override_names_file_and_field(tmp_path, content, message):
    override = tmp_path / "bad.json"
    override.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=message) as info:
        load_thresholds(override)
    assert "bad.json" in str(info.value)


def test_value_in_the_wrong_unit_is_refused():
    with pytest.raises(ValueError, match="expected a fraction"):
        threshold_for("dfer").check_range(71.32)
    with pytest.raises(ValueError, match="unknown|expected one of"):
        threshold_for("gaze")
