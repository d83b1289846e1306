"""The consultation desk form (個別相談申込書): its layout, renderer and sample.

A shorter form than the application, with no seal: companies still planning
a base ask for one hour of consultation. The text reader (text.py) finds it
by its title or its own labels (相談内容, 希望日時) and returns
``FormReading(form="consultation")``.

``preferred_dates`` (希望日時, up to three wishes) is read as a list of ISO
strings in the order written: "YYYY-MM-DDTHH:MM" when the applicant wrote a
start time (「14:00〜15:00」 → "T14:00", 「午後2時」 → "T14:00"), else
"YYYY-MM-DD". A wish whose date cannot be read is left out; a cell with no
readable date at all is kept as its text for a check to name.
"""

from __future__ import annotations

from mailbot.forms import layout
from mailbot.forms.fill import corporate_number, render_form
from mailbot.forms.layout import Field, FormSpec, Section

TITLE = "海外拠点設立にあたっての個別相談 申込書"
MAX_WISHES = 3

CONSULTATION = FormSpec(
    "consultation",
    TITLE,
    (),
    (
        Section("1. 申込者", (
            Field("company_name", "企業名"),
            Field("corporate_number", "法人番号"),
            Field("contact_name", "担当者氏名"),
            Field("contact_email", "E-mail", aliases=("Eメール", "メールアドレス", "Email")),
            Field("contact_phone", "電話番号"),
        )),
        Section("2. ご相談の内容", (
            Field("country", "対象国・地域", "country", layout.COUNTRY_OPTIONS),
            Field("topic", "相談内容", lines=4),
            Field("preferred_dates", "希望日時（第3希望まで）", "datetimes", lines=MAX_WISHES,
                  aliases=("希望日時",)),
        )),
    ),
)


def render_consultation(values: dict) -> bytes:
    """The consultation form filled with ``values`` (FormReading.fields vocabulary)."""
    return render_form(CONSULTATION, values, seal="none")


def sample_consultation_values(**overrides) -> dict:
    """A complete consultation request; an override of None removes that key."""
    values = {
        "company_name": "株式会社サンプル精機",
        "corporate_number": corporate_number("010401099887"),
        "contact_name": "佐藤 花子",
        "contact_email": "hanako.sato@sample-seiki.co.jp",
        "contact_phone": "03-1234-5678",
        "country": "TH",
        "topic": "タイに駐在員事務所を設立する予定です。設立前に整えるべき秘密情報の管理規程と、"
                 "現地採用社員との秘密保持契約について相談したい。",
        "preferred_dates": ["2026-12-03T14:00", "2026-12-04T10:30", "2026-12-08"],
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}
