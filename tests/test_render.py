"""Every template renders with its documented context, in Japanese and English; holes, missing files,
unknown languages and header tricks fail; HTML escapes what applicants wrote."""

from __future__ import annotations

from datetime import date

import pytest

from mailbot import PROJECT_ROOT
from mailbot.checks.problem import Problem
from mailbot.config import ProgramSettings
from mailbot.errors import TemplateError
from mailbot.render import (
    Renderer,
    english_date,
    hours_number,
    japanese_date,
    one_line,
    plain_address,
)

PROGRAM = ProgramSettings(
    opens=date(2024, 5, 27), closes=date(2025, 1, 31), cap=18,
    signature="日本貿易振興機構（ジェトロ）知的財産課\nE-mail: CHIZAI@jetro.go.jp",
)
NUMBER = "TS-2024-0007"
PROBLEMS = [
    Problem("company_name_missing", "company_name", "error", "「企業名」欄をご記入ください。"),
    Problem("seal_missing", "seal", "error", "「代表者氏名」欄の「印」の位置に押印してください。"),
]

CONTEXTS = {
    "receipt": {"position": 3},
    "fix_request": {"problems": PROBLEMS},
    "waitlisted": {"position": 2},
    "closed": {},
    "pdf_unreadable": {"reason": "PDFにパスワードが設定されています。", "filename": "申請書.pdf"},
}


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(PROJECT_ROOT / "templates")


@pytest.mark.parametrize("name", sorted(CONTEXTS))
def test_every_template_renders_with_number_greeting_and_signature(renderer, name):
    mail = renderer.render(name, program=PROGRAM, reception_number=NUMBER,
                           company_name="株式会社サンプル精機", contact_name="田中 花子", **CONTEXTS[name])
    assert NUMBER in mail.subject and PROGRAM.name in mail.subject
    assert "\n" not in mail.subject
    assert mail.body.startswith("株式会社サンプル精機\n田中 花子 様\n")
    assert PROGRAM.name in mail.body and mail.body.endswith("E-mail: CHIZAI@jetro.go.jp\n")
    assert "{{" not in mail.body and "{%" not in mail.body


@pytest.mark.parametrize("name", sorted(CONTEXTS))
def test_company_and_contact_are_optional(renderer, name):
    mail = renderer.render(name, program=PROGRAM, reception_number=NUMBER, **CONTEXTS[name])
    assert mail.body.startswith("ご担当者様\n")


def test_receipt_says_position_cap_and_next_steps(renderer):
    body = renderer.render("receipt", program=PROGRAM, reception_number=NUMBER, position=3).body
    assert "受付順位：3番目" in body and "計18件程度" in body and "セルフチェックシート" in body


def test_fix_request_numbers_each_problem_and_says_how_to_resend(renderer):
    body = renderer.render("fix_request", program=PROGRAM, reception_number=NUMBER,
                           problems=PROBLEMS).body
    assert "1. 「企業名」欄をご記入ください。\n2. 「代表者氏名」欄の「印」の位置に押印してください。" in body
    assert "返信" in body and "押印済み" in body and f"受付番号（{NUMBER}）は消さずに" in body


def test_fix_request_accepts_problem_dicts(renderer):
    body = renderer.render("fix_request", program=PROGRAM, reception_number=NUMBER,
                           problems=[p.as_json() for p in PROBLEMS]).body
    assert "2. 「代表者氏名」" in body


def test_waitlisted_and_closed(renderer):
    waiting = renderer.render("waitlisted", program=PROGRAM, reception_number=NUMBER, position=2)
    assert "キャンセル待ち順位：2番目" in waiting.body and "計18件程度" in waiting.body
    closed = renderer.render("closed", program=PROGRAM, reception_number=NUMBER)
    assert "2024年5月27日（月）～2025年1月31日（金）" in closed.body


def test_pdf_unreadable_gives_the_reason(renderer):
    body = renderer.render("pdf_unreadable", program=PROGRAM, reception_number=NUMBER,
                           reason="ファイルが壊れています。").body
    assert "理由：ファイルが壊れています。" in body and "（申請書.pdf）" not in body


def test_applicant_text_cannot_add_headers_to_the_subject(tmp_path):
    (tmp_path / "ja").mkdir()
    (tmp_path / "ja" / "echo.txt.j2").write_text(
        "{% block subject %}Re: {{ company_name }}{% endblock %}{% block body %}x{% endblock %}")
    mail = Renderer(tmp_path).render("echo", company_name="ACME\r\nBcc: all@example.com\x00")
    assert mail.subject == "Re: ACME Bcc: all@example.com"


def test_a_missing_variable_is_an_error(renderer):
    with pytest.raises(TemplateError, match="position"):
        renderer.render("receipt", program=PROGRAM, reception_number=NUMBER)


def test_a_missing_template_is_an_error(renderer):
    with pytest.raises(TemplateError, match="template not found"):
        renderer.render("adoption_notice", program=PROGRAM)
    with pytest.raises(TemplateError, match="bad template name"):
        renderer.render("../secrets", program=PROGRAM)


def test_a_template_without_blocks_is_an_error(tmp_path):
    (tmp_path / "ja").mkdir()
    (tmp_path / "ja" / "plain.txt.j2").write_text("hello")
    with pytest.raises(TemplateError, match="no {% block subject %}"):
        Renderer(tmp_path).render("plain")


def test_japanese_date():
    assert japanese_date(date(2025, 1, 31)) == "2025年1月31日（金）"
    assert japanese_date("2024-05-27") == "2024年5月27日（月）"


def test_an_application_fills_number_and_names(renderer):
    from mailbot.models import Application

    app = Application(reception_number="TS-2024-0042", state="queued", sender="a@example.co.jp",
                      company_name="株式会社サンプル精機", fields={"contact_name": "田中 花子"})
    mail = renderer.render("receipt", app=app, program=PROGRAM, position=1, sender_name="Hanako")
    assert "TS-2024-0042" in mail.subject
    assert mail.body.startswith("株式会社サンプル精機\n田中 花子 様\n")


def test_the_sender_name_greets_when_no_contact_is_known(renderer):
    mail = renderer.render("closed", app=None, program=PROGRAM, reception_number=NUMBER,
                           sender_name="田中")
    assert mail.body.startswith("田中 様\n")


def test_pdf_unreadable_without_an_application(renderer):
    mail = renderer.render("pdf_unreadable", app=None, program=PROGRAM, reason="PDFではありません。")
    assert mail.subject == f"【{PROGRAM.name}】添付ファイルを読み取れませんでした"
    assert "受付番号（" not in mail.body and "理由：PDFではありません。" in mail.body


# --- languages, HTML, header safety ------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CONTEXTS))
def test_every_template_renders_in_english_with_number_greeting_and_signature(renderer, name):
    mail = renderer.render(name, language="en", program=PROGRAM, reception_number=NUMBER,
                           company_name="株式会社サンプル精機", contact_name="田中 花子", **CONTEXTS[name])
    assert NUMBER in mail.subject and PROGRAM.name in mail.subject and "\n" not in mail.subject
    assert mail.body.startswith("株式会社サンプル精機\nDear 田中 花子,\n")
    assert "Japan External Trade Organization (JETRO)" in mail.body
    assert mail.body.endswith("E-mail: CHIZAI@jetro.go.jp\n") and "平素より" not in mail.body


def test_the_language_of_one_call_leaves_the_renderer_default(renderer):
    english = renderer.render("closed", language="en", program=PROGRAM, reception_number=NUMBER)
    japanese = renderer.render("closed", program=PROGRAM, reception_number=NUMBER)
    assert "Monday, 27 May 2024 to Friday, 31 January 2025" in english.body
    assert "2024年5月27日（月）～2025年1月31日（金）" in japanese.body
    assert english.body.startswith("Dear Sir or Madam,\n") and japanese.body.startswith("ご担当者様\n")


def test_a_template_missing_in_english_names_the_file(tmp_path):
    (tmp_path / "ja").mkdir()
    (tmp_path / "ja" / "only.txt.j2").write_text("{% block subject %}s{% endblock %}{% block body %}b{% endblock %}")
    renderer = Renderer(tmp_path)
    assert renderer.render("only").subject == "s"
    with pytest.raises(TemplateError, match=f"template not found: {tmp_path / 'en' / 'only.txt.j2'}"):
        renderer.render("only", language="en")


def test_an_unknown_language_is_an_error(renderer):
    with pytest.raises(TemplateError, match="unknown language 'fr'"):
        renderer.render("closed", language="fr", program=PROGRAM, reception_number=NUMBER)
    with pytest.raises(TemplateError, match="unknown language '../ja'"):
        Renderer(PROJECT_ROOT / "templates", language="../ja")


def test_html_templates_escape_what_applicants_wrote_and_text_stays_plain(tmp_path):
    (tmp_path / "ja").mkdir()
    (tmp_path / "ja" / "digest.html.j2").write_text("<p>{{ company_name }}</p><p>{{ note|safe }}</p>")
    (tmp_path / "ja" / "digest.txt.j2").write_text(
        "{% block subject %}{{ company_name }}{% endblock %}{% block body %}{{ company_name }}{% endblock %}")
    name = '<script>alert("x")</script> & ㈱サンプル'
    html = Renderer(tmp_path).render_html("digest", company_name=name, note="<b>ours</b>")
    assert html == ("<p>&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; ㈱サンプル</p>"
                    "<p><b>ours</b></p>")
    text = Renderer(tmp_path).render("digest", company_name=name)
    assert text.body == name + "\n" and text.subject == name


def test_english_dates_and_hours():
    assert english_date(date(2025, 1, 31)) == "Friday, 31 January 2025"
    assert english_date("2024-05-27") == "Monday, 27 May 2024"
    assert [hours_number(h) for h in (23.0, 18.5, 0.5, 0.0)] == ["23", "18.5", "0.5", "0"]


def test_one_line_defuses_encoded_word_look_alikes():
    trap = "Re: =?utf-8?b?DQpCY2M6IGV2aWxAeC5qcA==?=\r\n\u2028x"
    assert one_line(trap) == "Re: = ?utf-8?b?DQpCY2M6IGV2aWxAeC5qcA== ?= x"
    assert "=?" not in one_line("==?=?")


@pytest.mark.parametrize("address, plain", [
    ("tanaka@sample-seiki.example.jp", True), ("info+apply@example.co.jp", True), ("a.b@例え.jp", True),
    ("0:@example.jp", False),  # ':' opens an address group
    ("=?utf-8?b?eA==?=@example.jp", False), ("a b@example.jp", False), ("a@example.jp\r\n", False),
    ("a@b@example.jp", False), ('"a"@example.jp', False), ("a..b@example.jp", False), ("a@localhost", False),
    ("a@example.jp,b@example.jp", False), ("a@example.jp\x00", False),
])
def test_plain_address(address, plain):
    assert plain_address(address) is plain
