"""`where:` conditions are checked when the rules file loads: rule name, token and file:line."""

from __future__ import annotations

import pytest

from segsync.config import parse_rules
from segsync.config.segments import RfmConfig, SegmentsConfig, parse_scores
from segsync.errors import ConfigError

BASE = """\
sources:
  - name: shop
    kind: csv
    path: deals.csv
    columns: {{customer_id: id, date: date, amount: sum}}
    fields:
      tariff: UF_CRM_TARIFF
segments:
  vip:
    where: "abc = 'A' AND revenue_365d >= 1000000"
  custom:
    - name: gold
      where: "tariff = 'gold' AND rfm IN ('champions', 'loyal_customers')"
{extra_custom}
actions:
  - name: call-gold
    where: {action_where}
    task: {{title: "Позвонить"}}
"""


def rules(extra_custom: str = "", action_where: str = '"gold AND churn_flag"'):
    return parse_rules(BASE.format(extra_custom=extra_custom, action_where=action_where), "rules.yaml", env={})


def test_valid_conditions_may_use_fields_and_actions_may_use_custom_segments():
    loaded = rules()
    assert loaded.segments.custom[0].name == "gold"
    assert loaded.actions[0].where == "gold AND churn_flag"


def test_a_broken_segment_condition_is_located_with_rule_name_and_token():
    with pytest.raises(ConfigError) as info:
        rules(extra_custom="    - name: broken\n      where: \"abc = 'A' AND revnue_365d > 5\"")
    (issue,) = info.value.issues
    assert (issue.file, issue.line) == ("rules.yaml", 15)
    assert issue.path == "segments.custom[1].where"
    assert "'broken'" in issue.message and "'revnue_365d'" in issue.message and "position 15" in issue.message


def test_a_broken_action_condition_is_located():
    with pytest.raises(ConfigError) as info:
        rules(action_where="\"gold AND abc IN ('A', 'B'\"")
    (issue,) = info.value.issues
    assert issue.path == "actions[0].where" and issue.line == 17
    assert "'call-gold'" in issue.message and "IN list" in issue.message


def test_segments_cannot_reference_custom_segments_but_actions_can():
    with pytest.raises(ConfigError, match="unknown column 'gold'"):
        rules(extra_custom='    - name: other\n      where: "gold"')


def test_custom_names_are_checked():
    with pytest.raises(ValueError, match="built-in column"):
        SegmentsConfig.model_validate({"custom": [{"name": "abc", "where": "TRUE"}]})
    with pytest.raises(ValueError, match="used twice"):
        SegmentsConfig.model_validate({"custom": [{"name": "x", "where": "TRUE"}, {"name": "x", "where": "TRUE"}]})
    with pytest.raises(ValueError):
        SegmentsConfig.model_validate(
            {"custom": [{"name": "a_name_that_is_far_too_long_for_history", "where": "TRUE"}]}
        )


def test_rfm_maps_are_checked_against_bins():
    with pytest.raises(ValueError, match="default map needs bins: 5"):
        RfmConfig.model_validate({"bins": 3})
    with pytest.raises(ValueError, match="above bins"):
        RfmConfig.model_validate({"bins": 3, "map": [{"name": "top", "r": "3-5", "f": "3"}]})
    ok = RfmConfig.model_validate({"bins": 3, "map": [{"name": "top", "r": "3", "f": "2-3", "title_ru": "Топ"}]})
    assert ok.map[0].title_ru == "Топ"
    assert parse_scores("1-2,5") == {1, 2, 5}
    with pytest.raises(ValueError):
        parse_scores("5-1")
    with pytest.raises(ValueError):
        parse_scores("6")


def test_abc_window_accepts_all():
    assert SegmentsConfig.model_validate({"abc": {"window": "all"}}).abc.window == "all"
