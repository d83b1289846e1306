"""Normalisers: labels, dates, numbers, checkboxes, countries."""

import pytest

from mailbot.forms import fields as F
from mailbot.forms import layout
from mailbot.forms.fill import corporate_check_digit, sample_values


@pytest.mark.parametrize("text", ["令和6年6月3日", "R6.6.3", "2024年6月3日", "2024/6/3",
                                  "2024-06-03", "２０２４年６月３日", "令和 6 年 6 月 3 日"])
def test_dates_to_iso(text):
    assert F.parse_date(text) == "2024-06-03"


def test_gannen_and_invalid_dates():
    assert F.parse_date("令和元年5月1日") == "2019-05-01"
    assert F.parse_date("2024年2月30日") is None
    assert F.parse_date("年　月　日") is None


def test_month():
    assert F.parse_month("2018年4月") == "2018-04"
    assert F.parse_month("令和7年10月") == "2025-10"


@pytest.mark.parametrize("text,value", [("1,200名", 1200), ("１２", 12), ("10 時間", 10), ("８時間", 8)])
def test_integers(text, value):
    assert F.parse_int(text) == value


def test_labels_and_matching():
    assert F.label_key("企 業 名：") == "企業名"
    assert F.label_key("⽇本") == "日本"  # Kangxi radical from a Mac export
    assert F.match_text("㈱サンプル 精機") == F.match_text("株式会社サンプル精機")


def test_checkboxes():
    assert F.read_boxes("☑現地法人 ☐工場 ✓駐在員事務所") == [
        (True, "現地法人"), (False, "工場"), (True, "駐在員事務所")]
    kinds = layout.field_by_key("base_kinds")
    assert F.normalise(kinds, "■現地法人 □工場 ✔駐在員事務所") == ["subsidiary", "rep_office"]
    assert F.normalise(kinds, "□現地法人 □工場 □駐在員事務所") is None


def test_countries():
    country = layout.field_by_key("country")
    assert F.normalise(country, "□中国 □インド ■インドネシア") == "ID"
    assert F.normalise(country, "□中国 ☑欧州（国名：ドイツ）") == "EU:DE"
    assert F.normalise(country, "□中国 ☑欧州（国名： チェコ共和国 ）") == "EU:CZ"
    two = "■中国 ■タイ"
    assert F.normalise(country, two) == two  # kept as text for a check to flag


def test_unnormalisable_kept_and_blank_is_none():
    employees = layout.field_by_key("employees")
    assert F.normalise(employees, "多数") == "多数"
    assert F.normalise(employees, "　　名") is None
    assert F.normalise(layout.field_by_key("company_name"), "  ") is None


def test_pledge_value():
    assert F.pledge_value("■ 営業秘密…") is True
    assert F.pledge_value("□ 営業秘密…") is False
    assert F.pledge_value("営業秘密…") is None


def test_sample_corporate_number_has_valid_check_digit():
    number = sample_values()["corporate_number"]
    assert len(number) == 13 and int(number[0]) == corporate_check_digit(number[1:])
    assert corporate_check_digit("000012050002") == 7  # 国税庁 itself: 7000012050002


def test_sample_values_overrides():
    values = sample_values(country="EU:DE", industry=None)
    assert values["country"] == "EU:DE" and "industry" not in values
