"""Every mail an applicant can get has a Japanese name in the staff bounce notice."""

from __future__ import annotations

from mailbot import PROJECT_ROOT

JA = PROJECT_ROOT / "templates" / "ja"


def test_the_bounce_notice_names_every_applicant_mail():
    notice = (JA / "staff_bounce.txt.j2").read_text(encoding="utf-8")
    applicant_mails = sorted(p.name.removesuffix(".txt.j2") for p in JA.glob("*.txt.j2")
                             if not p.name.startswith(("_", "staff_")))
    assert len(applicant_mails) > 10
    unnamed = [name for name in applicant_mails if f'"{name}":' not in notice]
    assert unnamed == []
