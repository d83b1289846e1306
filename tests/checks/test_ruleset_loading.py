"""rules/*.toml mistakes are caught at load, with the file and the entry named."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mailbot import ruleset
from mailbot.errors import RulesError
from tests.checks.sample import RULES_DIR, reading

REGIONS = """
[limits]
hours_per_country = 23
[regions]
CN = "中国"
[europe]
DE = "ドイツ"
"""

LABELS = """
[labels]
company_name = "企業名"
employees = "従業員数"
"""


def write_rules(tmp_path: Path, checks: str, *, regions: str = REGIONS) -> Path:
    (tmp_path / "regions.toml").write_text(regions, encoding="utf-8")
    (tmp_path / "application.toml").write_text(LABELS + checks, encoding="utf-8")
    return tmp_path


def load_error(tmp_path: Path, checks: str, **kw) -> str:
    with pytest.raises(RulesError) as caught:
        ruleset.load(write_rules(tmp_path, checks, **kw))
    return str(caught.value)


def test_the_shipped_rules_load():
    rules = ruleset.load(RULES_DIR)
    assert rules.region_name("CN") == "中国" and rules.region_name("EU:DE") == "ドイツ"
    assert len(rules.checks) > 20


def test_a_minimal_rules_dir_works(tmp_path):
    rules = ruleset.load(write_rules(tmp_path, """
[[checks]]
check = "required"
field = "company_name"
message = "「{label}」をご記入ください。"
"""))
    (problem,) = rules.check(reading(drop=("company_name",)))
    assert problem.message_ja == "「企業名」をご記入ください。"


def test_unknown_check_name(tmp_path):
    msg = load_error(tmp_path, '[[checks]]\ncheck = "requird"\nfield = "company_name"\nmessage = "x"\n')
    assert "application.toml: checks[0]" in msg and "unknown check 'requird'" in msg
    assert "required" in msg  # lists the known ones


def test_missing_parameter(tmp_path):
    msg = load_error(tmp_path, '[[checks]]\ncheck = "choice"\nfield = "employees"\nmessage = "x"\n')
    assert "checks[0] (check = 'choice')" in msg and "missing parameter 'values'" in msg


def test_bad_parameter_type(tmp_path):
    msg = load_error(tmp_path, """
[[checks]]
check = "required"
field = "company_name"
message = "ok"

[[checks]]
check = "number"
field = "employees"
min = "1"
message = "x"
""")
    assert "checks[1] (check = 'number')" in msg and "min" in msg and "'1'" in msg


def test_unknown_parameter(tmp_path):
    msg = load_error(tmp_path, '[[checks]]\ncheck = "email"\nfield = "employees"\nstrict = true\nmessage = "x"\n')
    assert "unknown key 'strict'" in msg


def test_missing_message(tmp_path):
    msg = load_error(tmp_path, '[[checks]]\ncheck = "required"\nfield = "employees"\n')
    assert "checks[0]" in msg and "missing parameter 'message'" in msg


def test_unknown_field(tmp_path):
    msg = load_error(tmp_path, '[[checks]]\ncheck = "required"\nfield = "companyname"\nmessage = "x"\n')
    assert "unknown field 'companyname'" in msg


def test_unknown_field_in_when(tmp_path):
    msg = load_error(tmp_path, '[[checks]]\ncheck = "required"\nfield = "employees"\n'
                               'when = { kind = "x" }\nmessage = "x"\n')
    assert "when: unknown field 'kind'" in msg


def test_unknown_placeholder(tmp_path):
    msg = load_error(tmp_path, '[[checks]]\ncheck = "required"\nfield = "employees"\nmessage = "{lable}"\n')
    assert "unknown placeholder {lable}" in msg


def test_attribute_access_in_a_message_is_refused(tmp_path):
    msg = load_error(tmp_path, '[[checks]]\ncheck = "required"\nfield = "employees"\n'
                               'message = "{label.__class__}"\n')
    assert "unknown placeholder" in msg


def test_bad_regex(tmp_path):
    msg = load_error(tmp_path, '[[checks]]\ncheck = "pattern"\nfield = "employees"\n'
                               'regex = "(\\\\d"\nmessage = "x"\n')
    assert "not a valid regular expression" in msg


def test_bad_severity(tmp_path):
    msg = load_error(tmp_path, '[[checks]]\ncheck = "required"\nfield = "employees"\n'
                               'severity = "fatal"\nmessage = "x"\n')
    assert "severity" in msg


def test_field_and_fields_together(tmp_path):
    msg = load_error(tmp_path, '[[checks]]\ncheck = "required"\nfield = "employees"\n'
                               'fields = ["employees"]\nmessage = "x"\n')
    assert "exactly one of 'field' or 'fields'" in msg


def test_bad_regions_file(tmp_path):
    msg = load_error(tmp_path, '[[checks]]\ncheck = "required"\nfield = "employees"\nmessage = "x"\n',
                     regions='[limits]\nhours_per_country = "23"\n[regions]\nCN = "中国"\n')
    assert msg.startswith("regions.toml") and "hours_per_country" in msg


def test_bad_region_code(tmp_path):
    msg = load_error(tmp_path, '[[checks]]\ncheck = "required"\nfield = "employees"\nmessage = "x"\n',
                     regions='[limits]\nhours_per_country = 23\n[regions]\nChina = "中国"\n')
    assert "regions.toml: [regions] China" in msg


def test_not_toml(tmp_path):
    write_rules(tmp_path, "")
    (tmp_path / "application.toml").write_text("[labels\n", encoding="utf-8")
    with pytest.raises(RulesError, match="application.toml: not valid TOML"):
        ruleset.load(tmp_path)


def test_missing_file(tmp_path):
    shutil.copy(RULES_DIR / "regions.toml", tmp_path / "regions.toml")
    with pytest.raises(RulesError, match="application.toml: rules file not found"):
        ruleset.load(tmp_path)


def test_the_consultation_form_has_its_own_rules():
    consultation = ruleset.load(RULES_DIR, "consultation")
    assert "topic" in consultation.labels and "representative_name" not in consultation.labels


def test_an_unknown_form_has_no_rules_file():
    with pytest.raises(RulesError, match="nosuchform.toml: rules file not found"):
        ruleset.load(RULES_DIR, "nosuchform")
