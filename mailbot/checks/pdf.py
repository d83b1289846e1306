"""Checks on the PDF file itself rather than on a field of the form.

``active_content``: the PDF carries what would act when a person opens it
(forms/active.py: a script on opening, a link that starts a program, a file
inside). mailbot never ran it, and the application is not sent back for it
(Acrobat forms are legitimate); it is a warning, so staff see it on the
application and in the digest before they open the file.
"""

from __future__ import annotations

from mailbot.checks.base import Check, register
from mailbot.checks.problem import Problem
from mailbot.forms.reading import FormReading

#: How forms/active.py's kinds are named to staff.
KIND_NAMES = {"JavaScript": "JavaScript", "Launch": "プログラムの起動", "ImportData": "データの読み込み",
              "SubmitForm": "外部への送信", "EmbeddedFile": "埋め込みファイル", "unchecked": "確認できない構造"}


@register
class ActiveContent(Check):
    """Scripts, program launches, embedded files: a warning for staff, with what was found.

    Reported on the pseudo-field the rules name (``field = "pdf"``), like the seal's.
    """

    name = "active_content"
    default_code = "pdf_active_content"
    default_severity = "warning"
    placeholders = frozenset({"kinds"})

    def check(self, reading: FormReading) -> list[Problem]:
        if not self.applies(reading) or not reading.active_content:
            return []
        kinds = "、".join(KIND_NAMES.get(kind, kind) for kind in reading.active_content)
        return [self.problem(key, reading, kinds=kinds) for key in self.entry.fields]
