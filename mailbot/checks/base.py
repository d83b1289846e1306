"""The building blocks of checks: a registry by name, entries, and Problem making.

A check is a tiny class with a ``name`` (what rules/*.toml calls it), a
pydantic ``Params`` model (its own keys in a rules entry, validated when the
rules load) and ``check(reading) -> list[Problem]``. The parts every entry
shares (fields, code, severity, message, when) live in ``Entry``, so a check
class only says what is wrong, never how it is worded: the words are data.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from mailbot.checks.problem import Problem
from mailbot.forms.reading import FormReading

#: Every check class, by the name rules/*.toml uses in ``check = "..."``.
REGISTRY: dict[str, type[Check]] = {}

#: Placeholders every message may use.
BASE_PLACEHOLDERS = frozenset({"label", "field", "value"})

#: How much of the applicant's own text a message quotes (it goes into a reply).
MAX_QUOTED = 40


def register(cls: type[Check]) -> type[Check]:
    """Class decorator: make a check available to rules/*.toml under ``cls.name``."""
    REGISTRY[cls.name] = cls
    return cls


class NoParams(BaseModel):
    """A check without parameters of its own: any extra key is an error."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


@dataclass(frozen=True)
class RuleContext:
    """What the rules files know beyond single entries: labels, regions, limits."""

    labels: Mapping[str, str]  # field key -> the form's label, in form order
    regions: Mapping[str, str]  # CN -> 中国 ...
    europe: Mapping[str, str]  # DE -> ドイツ ... (accepted as EU:DE)
    hours_cap: int  # hours of service per company and country


@dataclass(frozen=True)
class Entry:
    """The shared part of one rules entry: which fields, which code, which words."""

    fields: tuple[str, ...]
    code: str  # may hold {field}
    severity: str  # "error" | "warning"
    message: str  # str.format template: {label}, {field}, {value} + the check's own
    when: Mapping[str, Any]  # field -> value (or list of values) that must hold


def is_blank(value: Any) -> bool:
    """Absent, empty or whitespace-only: the form's "not filled in"."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, (list, tuple, set, dict)) and not value


def nfkc(text: str) -> str:
    """Full-width digits and letters to ASCII, as the form arrives in every width."""
    return unicodedata.normalize("NFKC", text).strip()


def quoted(reading: FormReading, key: str) -> str:
    """The applicant's own spelling of a field, one line, short: safe to quote in a reply."""
    value = reading.originals.get(key, reading.fields.get(key, ""))
    text = " ".join(str("" if value is None else value).split())
    return text if len(text) <= MAX_QUOTED else text[: MAX_QUOTED - 1] + "…"


class Check:
    """One kind of check; subclasses set ``name`` and implement ``check``."""

    name: ClassVar[str]
    default_code: ClassVar[str] = "{field}_invalid"
    default_severity: ClassVar[str] = "error"
    placeholders: ClassVar[frozenset[str]] = frozenset()  # beyond BASE_PLACEHOLDERS
    Params: ClassVar[type[BaseModel]] = NoParams

    def __init__(self, entry: Entry, params: BaseModel, context: RuleContext):
        self.entry = entry
        self.params = params
        self.context = context

    def applies(self, reading: FormReading) -> bool:
        """True when every ``when`` condition holds for this reading."""
        for key, wanted in self.entry.when.items():
            allowed = wanted if isinstance(wanted, list) else [wanted]
            if reading.fields.get(key) not in allowed:
                return False
        return True

    def check(self, reading: FormReading) -> list[Problem]:
        """The problems this check finds in the reading (empty when all is well)."""
        raise NotImplementedError

    def problem(self, key: str | None, reading: FormReading, **extra: Any) -> Problem:
        """A Problem for ``key`` worded by the entry's message."""
        values = {
            "label": self.context.labels.get(key or "", key or ""),
            "field": key or "",
            "value": quoted(reading, key) if key else "",
            **extra,
        }
        code = self.entry.code.format(field=key or "")
        return Problem(code, key, self.entry.severity, self.entry.message.format_map(values))


class FieldCheck(Check):
    """Judges each named field on its own; blank fields are left to ``required``."""

    def check(self, reading: FormReading) -> list[Problem]:
        if not self.applies(reading):
            return []
        found = []
        for key in self.entry.fields:
            value = reading.fields.get(key)
            if is_blank(value):
                continue
            extra = self.judge(value)
            if extra is not None:
                found.append(self.problem(key, reading, **extra))
        return found

    def judge(self, value: Any) -> dict[str, Any] | None:
        """None when the value is fine, else the extra placeholders of the message."""
        raise NotImplementedError
