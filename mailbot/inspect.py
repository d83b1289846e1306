"""`mailbot inspect FILE.pdf`: read one form and judge it, as the reply would.

The JSON shape is a contract other tools read (../shared/spec/application-form.md):
form, source, pages, form_page, fields, seal, problems, valid; or, when the
file cannot be read at all, {"error": {"code", "message"}}.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mailbot.checks.problem import Problem
from mailbot.errors import PdfError
from mailbot.forms.reading import FormReading
from mailbot.ruleset import RuleSet


def read_and_judge(data: bytes, read_form: Callable[[bytes], FormReading],
                   rulesets: Mapping[str, RuleSet]) -> tuple[FormReading, dict[str, Any]]:
    """The reading and the inspect JSON for one PDF; PdfError propagates (the caller exits 2)."""
    reading = read_form(data)
    return reading, as_json(reading, rulesets)


def as_json(reading: FormReading, rulesets: Mapping[str, RuleSet]) -> dict[str, Any]:
    """The contract's JSON object for a reading, judged by its form's rules."""
    rules = rulesets.get(reading.form or "")
    problems = rules.check(reading) if rules is not None else []
    if reading.form is None:
        problems = [Problem("not_application_form", None, "error",
                            "申請書の様式として読み取れませんでした。所定の申請書をご使用ください。")]
    return {
        "form": reading.form,
        "source": reading.source,
        "pages": reading.pages,
        "form_page": reading.form_page,
        "fields": dict(reading.fields),
        "seal": reading.seal.as_json(),
        "problems": [p.as_json() for p in problems],
        "valid": not any(p.severity == "error" for p in problems),
    }


def error_json(exc: PdfError) -> dict[str, Any]:
    """The JSON for a file that could not be read at all."""
    return {"error": {"code": exc.code, "message": exc.message}}


def as_text(reading: FormReading, result: dict[str, Any]) -> str:
    """A human reading of the inspect result, for staff at a terminal.

    For a scan each field shows OCR's confidence (0-1), and the fields that
    were seen but not trusted are named.
    """
    lines = [f"form: {result['form']}  source: {result['source']}  pages: {result['pages']}"
             f"  form page: {result['form_page']}"]
    lines += [f"  {key}: {value}{_confidence(reading, key)}" for key, value in result["fields"].items()]
    if reading.uncertain:
        lines.append("  not read with confidence: " + ", ".join(reading.uncertain))
    seal = result["seal"]
    lines.append(f"seal: present={seal['present']} near_field={seal['near_field']} color={seal['color']}")
    lines += [f"  [{p['severity']}] {p['code']}: {p['message_ja']}" for p in result["problems"]]
    lines.append("valid" if result["valid"] else "NOT valid")
    return "\n".join(lines)


def _confidence(reading: FormReading, key: str) -> str:
    score = reading.confidence.get(key)
    return f"   (confidence {score:.2f})" if reading.source == "ocr" and score is not None else ""
