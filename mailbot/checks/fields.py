"""Checks on single fields: filled in, one of the allowed values, a date, a number, ticked.

Values arrive normalised by the form reader (ints, bools, ISO dates) or, when
the reader could not normalise them, as the applicant's own text: every
check here must answer "invalid" for such text, never raise.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from mailbot.checks.base import Check, FieldCheck, is_blank, nfkc, register
from mailbot.checks.problem import Problem
from mailbot.forms.reading import FormReading

_OK = None  # a judge's "nothing wrong"
_BAD: dict[str, Any] = {}  # a judge's "wrong, no extra placeholders"


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


@register
class Uncertain(Check):
    """The reader saw the field but could not read it with confidence (a scan).

    Listed first in the rules so that such a field is never also reported as
    missing: the applicant wrote something, a person must look at it.
    """

    name = "uncertain"
    default_code = "{field}_uncertain"
    default_severity = "warning"

    def check(self, reading: FormReading) -> list[Problem]:
        if not self.applies(reading):
            return []
        return [self.problem(key, reading) for key in self.entry.fields if key in reading.uncertain]


@register
class Required(Check):
    """The field must be filled in (and read)."""

    name = "required"
    default_code = "{field}_missing"

    def check(self, reading: FormReading) -> list[Problem]:
        if not self.applies(reading):
            return []
        return [
            self.problem(key, reading)
            for key in self.entry.fields
            if is_blank(reading.fields.get(key))
        ]


class ChoiceParams(_Params):
    values: list[str]
    multiple: bool = False  # True: a list of one or more of the values (拠点形態)


@register
class Choice(FieldCheck):
    """The value is one of the allowed values (or, with multiple, a list of them)."""

    name = "choice"
    Params = ChoiceParams

    def judge(self, value: Any) -> dict[str, Any] | None:
        allowed = self.params.values
        if self.params.multiple:
            items = [value] if isinstance(value, str) else value
            ok = isinstance(items, (list, tuple)) and all(v in allowed for v in items)
            return _OK if ok else _BAD
        return _OK if isinstance(value, str) and value in allowed else _BAD


class PatternParams(_Params):
    regex: str

    @field_validator("regex")
    @classmethod
    def _compiles(cls, regex: str) -> str:
        try:
            re.compile(regex)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return regex


@register
class Pattern(FieldCheck):
    """The text (NFKC-normalised) matches a regular expression in full."""

    name = "pattern"
    Params = PatternParams

    def judge(self, value: Any) -> dict[str, Any] | None:
        if not isinstance(value, str):
            return _BAD
        return _OK if re.fullmatch(self.params.regex, nfkc(value)) else _BAD


@register
class IsoDate(FieldCheck):
    """A real calendar date in ISO form (the reader turns 令和/西暦 into YYYY-MM-DD)."""

    name = "date"

    def judge(self, value: Any) -> dict[str, Any] | None:
        if isinstance(value, date):
            return _OK
        if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return _BAD
        try:
            date.fromisoformat(value)
        except ValueError:
            return _BAD
        return _OK


class NumberParams(_Params):
    integer: bool = True
    min: int | float | None = None  # inclusive
    max: int | float | None = None  # inclusive
    above: int | float | None = None  # exclusive lower bound (e.g. > 0)


def as_number(value: Any) -> int | float | None:
    """An int or float from a number or plain digits text; None for anything else."""
    if isinstance(value, bool):  # bool is an int to Python, never to the form
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        text = nfkc(value).replace(",", "")
        if re.fullmatch(r"\d+", text):
            return int(text)
        if re.fullmatch(r"\d+\.\d+", text):
            return float(text)
    return None


@register
class Number(FieldCheck):
    """A number (an integer by default) within [min, max] and above ``above``."""

    name = "number"
    Params = NumberParams
    placeholders = frozenset({"min", "max", "above"})

    def judge(self, value: Any) -> dict[str, Any] | None:
        number = as_number(value)
        p = self.params
        bad = (
            number is None
            or (p.integer and number != int(number))
            or (p.min is not None and number < p.min)
            or (p.max is not None and number > p.max)
            or (p.above is not None and number <= p.above)
        )
        return {"min": p.min, "max": p.max, "above": p.above} if bad else _OK


class MustBeTrueParams(_Params):
    # A pledge left unticked is read as absent: for pledges, absent means "not ticked".
    absent_is_false: bool = False


@register
class MustBeTrue(Check):
    """A checkbox that must be ticked (pledges, ジェトロお客様情報登録済み)."""

    name = "must_be_true"
    default_code = "{field}_unchecked"
    Params = MustBeTrueParams

    def check(self, reading: FormReading) -> list[Problem]:
        if not self.applies(reading):
            return []
        found = []
        for key in self.entry.fields:
            value = reading.fields.get(key)
            if is_blank(value) and not self.params.absent_is_false:
                continue  # left to a "required" entry
            if value is not True:
                found.append(self.problem(key, reading))
        return found


_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")


@register
class Email(FieldCheck):
    """An e-mail address (replies go there, so it must look deliverable)."""

    name = "email"

    def judge(self, value: Any) -> dict[str, Any] | None:
        ok = isinstance(value, str) and _EMAIL.fullmatch(nfkc(value)) is not None
        return _OK if ok else _BAD


# Japanese forms write phone numbers with any dash-like mark, ー (長音) included.
_DASHES = re.compile("[\u2010-\u2015\u2212\u30fc\uff70]")


class PhoneParams(_Params):
    min_digits: int = 10
    max_digits: int = 15


@register
class Phone(FieldCheck):
    """Digits with hyphens, +, spaces or brackets; between min and max digits."""

    name = "phone"
    Params = PhoneParams
    placeholders = frozenset({"min_digits", "max_digits"})

    def judge(self, value: Any) -> dict[str, Any] | None:
        text = _DASHES.sub("-", nfkc(value)) if isinstance(value, str) else ""
        digits = re.sub(r"\D", "", text)
        ok = (
            re.fullmatch(r"\+?[\d\s()\-]+", text) is not None
            and self.params.min_digits <= len(digits) <= self.params.max_digits
        )
        extra = {"min_digits": self.params.min_digits, "max_digits": self.params.max_digits}
        return _OK if ok else extra
