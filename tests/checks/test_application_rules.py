"""Each rule in rules/application.toml fires with its code, field and words, and only then."""

from __future__ import annotations

import dataclasses

import pytest

from mailbot.checks.corporate import check_digit, is_valid_corporate_number
from mailbot.forms.reading import NO_SEAL, Seal
from tests.checks.sample import codes, reading


def only(problems):
    assert len(problems) == 1, [p.code for p in problems]
    return problems[0]


def test_a_complete_reading_has_no_problem(rules):
    assert rules.check(reading()) == []


def test_a_complete_local_planned_reading_has_no_problem(rules):
    local = reading(
        application_type="local", corporate_number=None, investment_ratio=60,
        base_status="planned", base_name=None, base_address=None, base_established="2025-04",
        country="EU:DE",
    )
    assert rules.check(local) == []


@pytest.mark.parametrize(
    "key, label",
    [("company_name", "企業名"), ("contact_email", "E-mail"), ("employees", "従業員数"),
     ("submitted_on", "提出日"), ("representative_name", "代表者氏名")],
)
def test_a_missing_text_field_is_named_with_its_label(rules, key, label):
    problem = only(rules.check(reading(drop=(key,))))
    assert (problem.code, problem.field, problem.severity) == (f"{key}_missing", key, "error")
    assert f"「{label}」" in problem.message_ja and "ご記入ください" in problem.message_ja


def test_a_blank_string_counts_as_missing(rules):
    assert codes(rules.check(reading(company_name="  "))) == ["company_name_missing"]


def test_checkbox_groups_left_empty_ask_for_a_tick(rules):
    problem = only(rules.check(reading(drop=("country",))))
    assert problem.code == "country_missing"
    assert "☑" in problem.message_ja and "「対象国・地域」" in problem.message_ja


@pytest.mark.parametrize(
    "changes, code",
    [
        ({"application_type": "domestic", "corporate_number": None}, "corporate_number_missing"),
        ({"base_status": "existing", "base_name": None}, "base_name_missing"),
        ({"base_status": "existing", "base_address": None}, "base_address_missing"),
        ({"base_status": "planned", "base_name": None, "base_address": None}, "base_established_missing"),
        ({"application_type": "local", "corporate_number": None}, "investment_ratio_missing"),
    ],
)
def test_conditional_requirements(rules, changes, code):
    assert codes(rules.check(reading(**changes))) == [code]


def test_conditional_fields_are_optional_otherwise(rules):
    # local: no corporate number needed; planned: no base name/address needed.
    local = reading(application_type="local", corporate_number=None, investment_ratio=100)
    assert rules.check(local) == []


@pytest.mark.parametrize(
    "key, value",
    [("application_type", "both"), ("application_type", ["domestic", "local"]),
     ("base_status", "既存?"), ("base_kinds", ["subsidiary", "shop"]), ("base_kinds", 3)],
)
def test_values_outside_the_allowed_list(rules, key, value):
    problem = only(rules.check(reading(**{key: value})))
    assert (problem.code, problem.field) == (f"{key}_invalid", key)


@pytest.mark.parametrize("number", ["7000012050003", "700001205000", "70000120500021", "abc", 12])
def test_corporate_number_invalid(rules, number):
    problem = only(rules.check(reading(corporate_number=number)))
    assert (problem.code, problem.field) == ("corporate_number_invalid", "corporate_number")
    assert "「法人番号」" in problem.message_ja and "国税庁" in problem.message_ja


def test_corporate_number_check_digit_rule():
    assert check_digit("000012050002") == 7  # 国税庁
    assert check_digit("180301018771") == 1  # トヨタ自動車
    assert is_valid_corporate_number("１１８０３０１０１８７７１")  # full width
    assert is_valid_corporate_number("1-1803-0101-8771")
    assert not is_valid_corporate_number(True)


@pytest.mark.parametrize("value", ["多数", "約100名", 0, -3, 2.5, True, ["1"]])
def test_employees_not_a_positive_integer(rules, value):
    problem = only(rules.check(reading(employees=value)))
    assert problem.code == "employees_invalid"
    if isinstance(value, str):
        assert f"（{value}）" in problem.message_ja  # quotes what the applicant wrote


def test_employees_as_digit_text_is_accepted(rules):
    assert rules.check(reading(employees="１２００")) == []


@pytest.mark.parametrize("phone", ["03-3582", "03-3582-5198-1234-5678", "電話 03-3582-5198", 35825198])
def test_phone_invalid(rules, phone):
    problem = only(rules.check(reading(contact_phone=phone)))
    assert problem.code == "contact_phone_invalid" and "10〜15桁" in problem.message_ja


@pytest.mark.parametrize("phone", ["03ー3582ー5198", "+81 3 3582 5198", "０３（３５８２）５１９８"])
def test_phone_in_japanese_spellings_is_accepted(rules, phone):
    assert rules.check(reading(contact_phone=phone)) == []


@pytest.mark.parametrize("email", ["tanaka@", "tanaka example.co.jp", "tanaka@example", "@x.jp"])
def test_email_invalid(rules, email):
    assert codes(rules.check(reading(contact_email=email))) == ["contact_email_invalid"]


def test_submitted_on_not_a_date(rules):
    assert codes(rules.check(reading(submitted_on="令和6年13月3日"))) == ["submitted_on_invalid"]
    assert codes(rules.check(reading(submitted_on="2024-02-30"))) == ["submitted_on_invalid"]


@pytest.mark.parametrize("value", ["2025-13", "2025年4月", "2025-4", 202504])
def test_base_established_not_year_month(rules, value):
    planned = reading(base_status="planned", base_established=value)
    assert codes(rules.check(planned)) == ["base_established_invalid"]


@pytest.mark.parametrize("hours", [{"consultation_hours": -1}, {"training_hours": "たくさん"},
                                   {"training_hours": 1.5}])
def test_hours_not_whole_numbers(rules, hours):
    (key,) = hours
    assert codes(rules.check(reading(**hours))) == [f"{key}_invalid"]


def test_hours_total_zero(rules):
    problem = only(rules.check(reading(consultation_hours=0, training_hours=None)))
    assert (problem.code, problem.field) == ("hours_total_zero", "consultation_hours")


def test_hours_one_of_the_two_is_enough(rules):
    assert rules.check(reading(consultation_hours=None, training_hours=23)) == []


def test_hours_total_over_the_cap_from_rules(rules):
    problem = only(rules.check(reading(consultation_hours=20, training_hours=4)))
    assert problem.code == "hours_total_over_cap"
    assert "24時間" in problem.message_ja and "23時間" in problem.message_ja
    assert rules.hours_cap == 23


@pytest.mark.parametrize("value", [50, 0, 100, 33.3])
def test_investment_ratio_in_range_for_a_domestic_applicant(rules, value):
    assert rules.check(reading(investment_ratio=value)) == []


@pytest.mark.parametrize("value", [101, -1, "半分"])
def test_investment_ratio_out_of_range(rules, value):
    assert codes(rules.check(reading(investment_ratio=value))) == ["investment_ratio_invalid"]


def test_investment_ratio_zero_for_a_local_applicant(rules):
    local = reading(application_type="local", corporate_number=None, investment_ratio=0)
    problem = only(rules.check(local))
    assert problem.code == "investment_ratio_zero" and "出資" in problem.message_ja


def test_jetro_not_registered(rules):
    problem = only(rules.check(reading(jetro_registered=False)))
    assert (problem.code, problem.field) == ("jetro_not_registered", "jetro_registered")
    assert "登録済み" in problem.message_ja


@pytest.mark.parametrize("key", ["pledge_commitment", "pledge_experience", "pledge_publicity"])
@pytest.mark.parametrize("value", [False, None, "☐"])
def test_pledges_must_be_ticked(rules, key, value):
    problem = only(rules.check(reading(**{key: value})))
    assert (problem.code, problem.field) == (f"{key}_unchecked", key)
    assert "☑" in problem.message_ja


@pytest.mark.parametrize("country", ["US", "EU:US", "EU:", "中国", "cn", ["CN", "TH"]])
def test_country_not_eligible(rules, country):
    problem = only(rules.check(reading(country=country)))
    assert (problem.code, problem.field) == ("country_not_eligible", "country")
    assert "中国、タイ、ベトナム、インドネシア、インド" in problem.message_ja


@pytest.mark.parametrize("country", ["CN", "TH", "VN", "ID", "IN", "EU:DE", "EU:PL"])
def test_eligible_countries(rules, country):
    assert rules.check(reading(country=country)) == []


def test_seal_missing(rules):
    problem = only(rules.check(reading(seal=NO_SEAL)))
    assert (problem.code, problem.field, problem.severity) == ("seal_missing", "seal", "error")
    assert "押印" in problem.message_ja and "「代表者氏名」" in problem.message_ja


def test_seal_misplaced(rules):
    problem = only(rules.check(reading(seal=Seal(present=True, near_field=False, color="red"))))
    assert (problem.code, problem.severity) == ("seal_misplaced", "error")


@pytest.mark.parametrize("color", ["black", "blue", None])
def test_seal_not_red_is_a_warning(rules, color):
    problem = only(rules.check(reading(seal=Seal(present=True, near_field=True, color=color))))
    assert (problem.code, problem.severity) == ("seal_not_red", "warning")


def test_problems_follow_form_order_one_per_field(rules):
    spoilt = reading(drop=("company_name",), employees="多数", pledge_publicity=False,
                     seal=NO_SEAL, submitted_on="x")
    assert codes(rules.check(spoilt)) == [
        "submitted_on_invalid", "company_name_missing", "seal_missing",
        "employees_invalid", "pledge_publicity_unchecked",
    ]


def test_an_empty_reading_does_not_crash_and_lists_every_required_field(rules):
    found = codes(rules.check(reading(drop=tuple(reading().fields), seal=NO_SEAL)))
    assert "company_name_missing" in found and "hours_total_zero" in found
    assert "pledge_commitment_unchecked" in found and "seal_missing" in found
    assert "corporate_number_missing" not in found  # its condition (domestic) is unknown


def test_messages_quote_the_value_on_one_short_line(rules):
    problem = only(rules.check(reading(employees="多数\r\nSubject: x" + "あ" * 80)))
    assert "\n" not in problem.message_ja and "\r" not in problem.message_ja
    assert "…" in problem.message_ja


def test_errors_leave_warnings_to_staff(rules):
    problems = rules.check(reading(seal=Seal(present=True, near_field=True, color="black"),
                                   drop=("company_name",)))
    assert codes(rules.errors(problems)) == ["company_name_missing"]
    assert codes(problems) == ["company_name_missing", "seal_not_red"]


def test_an_uncertain_field_is_a_warning_for_staff_not_a_missing_field(rules):
    """A scan's doubtful 法人番号 is left out of fields and flagged: never 'missing'."""
    doubtful = reading(drop=("corporate_number", "contact_email"))
    doubtful = dataclasses.replace(doubtful, uncertain=("corporate_number",))
    problems = {p.field: p for p in rules.check(doubtful)}
    assert problems["corporate_number"].code == "corporate_number_uncertain"
    assert problems["corporate_number"].severity == "warning"
    assert "法人番号" in problems["corporate_number"].message_ja
    assert problems["contact_email"].code == "contact_email_missing"  # not uncertain: missing


def test_an_uncertain_seal_goes_to_staff(rules):
    doubtful = dataclasses.replace(reading(), uncertain=("seal",))
    [problem] = rules.check(doubtful)
    assert (problem.code, problem.severity) == ("seal_uncertain", "warning")
