"""rules/*.toml -> a RuleSet: the checks of one form, as data, validated at load.

Each form has its file (``application.toml``, ``consultation.toml``), and
``regions.toml`` serves both (rules/triage.toml belongs to intake):

- ``regions.toml``: ``[limits] hours_per_country``, ``[regions]`` (CN = "中国" …)
  and ``[europe]`` (the European countries accepted as ``EU:<code>``).
- ``application.toml`` (and each other form's file): ``[labels]`` (field key -> the form's label, in form
  order: problems are reported in that order) and ``[[checks]]`` entries::

      [[checks]]
      check = "required"            # a name in mailbot.checks.base.REGISTRY
      fields = ["company_name"]     # or field = "..."
      when = { application_type = "domestic" }   # optional condition
      code = "{field}_missing"      # optional, the check's default otherwise
      severity = "error"            # optional: error | warning
      message = "「{label}」欄をご記入ください。"   # the words the applicant reads

Any mistake (unknown check, unknown key, missing or mistyped parameter,
unknown field, unknown placeholder) is a RulesError naming file and entry,
raised at start-up rather than when the first application arrives.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mailbot import tomlfile
from mailbot.checks import corporate, fields, hours, pdf, region, seal  # noqa: F401  (register)
from mailbot.checks.base import BASE_PLACEHOLDERS, REGISTRY, Check, Entry, RuleContext
from mailbot.checks.problem import Problem
from mailbot.errors import RulesError
from mailbot.forms.reading import FormReading

FORMS = ("application", "consultation")
REGIONS_FILE = "regions.toml"
_COMMON_KEYS = {"check", "field", "fields", "code", "severity", "message", "when"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Limits(_Strict):
    hours_per_country: int = Field(gt=0)


class _RegionsFile(_Strict):
    limits: _Limits
    regions: dict[str, str] = Field(min_length=1)
    europe: dict[str, str] = Field(default_factory=dict)


class _ApplicationFile(_Strict):
    labels: dict[str, str] = Field(min_length=1)
    checks: list[dict[str, Any]] = Field(min_length=1)


class _Common(_Strict):
    check: str
    field: str | None = None
    fields: list[str] | None = None
    code: str | None = None
    severity: Literal["error", "warning"] | None = None
    message: str = Field(min_length=1)
    when: dict[str, str | bool | list[str]] = Field(default_factory=dict)


@dataclass(frozen=True)
class RuleSet:
    """The checks in rules order, and what they share (labels, regions, hour cap)."""

    checks: tuple[Check, ...]
    context: RuleContext

    def check(self, reading: FormReading) -> list[Problem]:
        """Every problem, at most one per field (the first rule wins), in form order."""
        found: dict[str | None, Problem] = {}
        loose: list[Problem] = []  # problems without a field: all kept
        for rule in self.checks:
            for problem in rule.check(reading):
                if problem.field is None:
                    loose.append(problem)
                else:
                    found.setdefault(problem.field, problem)
        order = {key: index for index, key in enumerate(self.context.labels)}
        ranked = sorted(found.values(), key=lambda p: order.get(p.field, len(order)))
        return ranked + loose

    @staticmethod
    def errors(problems: list[Problem]) -> list[Problem]:
        """The problems the applicant must fix (warnings only go to staff)."""
        return [problem for problem in problems if problem.severity == "error"]

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.context.labels)

    @property
    def hours_cap(self) -> int:
        return self.context.hours_cap

    def region_name(self, code: str) -> str:
        """中国 for CN, ドイツ for EU:DE; the code itself when unknown."""
        if code.startswith("EU:"):
            return self.context.europe.get(code.removeprefix("EU:"), code)
        return self.context.regions.get(code, code)


def load(rules_dir: Path, form: str = "application") -> RuleSet:
    """Read and validate regions.toml and ``<form>.toml`` (application, consultation)."""
    rules_dir = Path(rules_dir)
    regions = _validate(_RegionsFile, tomlfile.read(rules_dir / REGIONS_FILE, RulesError), REGIONS_FILE)
    _check_codes(regions)
    form_file = f"{form}.toml"
    app = _validate(_ApplicationFile, tomlfile.read(rules_dir / form_file, RulesError), form_file)
    context = RuleContext(
        labels=dict(app.labels),
        regions=dict(regions.regions),
        europe=dict(regions.europe),
        hours_cap=regions.limits.hours_per_country,
    )
    checks = tuple(
        _build(raw, f"{form_file}: checks[{index}]", context)
        for index, raw in enumerate(app.checks)
    )
    return RuleSet(checks, context)


def _validate(model: type[BaseModel], data: dict[str, Any], where: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RulesError(_describe(exc, where)) from None


def _check_codes(regions: _RegionsFile) -> None:
    for table, codes in (("regions", regions.regions), ("europe", regions.europe)):
        for code in codes:
            if len(code) != 2 or not code.isascii() or not code.isupper():
                raise RulesError(f"{REGIONS_FILE}: [{table}] {code}: not a 2-letter upper-case code")


def _build(raw: dict[str, Any], where: str, context: RuleContext) -> Check:
    """One [[checks]] entry -> a Check instance, or a RulesError naming the entry."""
    name = raw.get("check")
    where = f"{where} (check = {name!r})" if name else where
    common = _validate(_Common, {k: v for k, v in raw.items() if k in _COMMON_KEYS}, where)
    cls = REGISTRY.get(common.check)
    if cls is None:
        known = ", ".join(sorted(REGISTRY))
        raise RulesError(f"{where}: unknown check {common.check!r} (known: {known})")
    params = _validate(cls.Params, {k: v for k, v in raw.items() if k not in _COMMON_KEYS}, where)
    entry = Entry(
        fields=_fields(common, where, context),
        code=common.code or cls.default_code,
        severity=common.severity or cls.default_severity,
        message=common.message,
        when=dict(common.when),
    )
    _check_when(entry, where, context)
    _check_placeholders(entry.message, BASE_PLACEHOLDERS | cls.placeholders, f"{where}: message")
    _check_placeholders(entry.code, frozenset({"field"}), f"{where}: code")
    return cls(entry, params, context)


#: ``fields = ["*"]`` in a rules entry: every field in [labels] (and the seal).
ALL_FIELDS = "*"


def _fields(common: _Common, where: str, context: RuleContext) -> tuple[str, ...]:
    if (common.field is None) == (common.fields is None):
        raise RulesError(f"{where}: give exactly one of 'field' or 'fields'")
    keys = [common.field] if common.field is not None else list(common.fields or [])
    if keys == [ALL_FIELDS]:
        return tuple(context.labels)
    if not keys:
        raise RulesError(f"{where}: 'fields' is empty")
    for key in keys:
        if key not in context.labels:
            raise RulesError(f"{where}: unknown field {key!r} (not in [labels])")
    return tuple(keys)


def _check_when(entry: Entry, where: str, context: RuleContext) -> None:
    for key in entry.when:
        if key not in context.labels:
            raise RulesError(f"{where}: when: unknown field {key!r} (not in [labels])")


def _check_placeholders(text: str, allowed: frozenset[str], where: str) -> None:
    """Only plain names the check supplies: no {x.attr}, no {x[0]}, no stray braces."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
    except ValueError as exc:
        raise RulesError(f"{where}: bad braces: {exc}") from None
    for name in names:
        if name not in allowed:
            choices = ", ".join(sorted(allowed))
            raise RulesError(f"{where}: unknown placeholder {{{name}}} (allowed: {choices})")


def _describe(exc: ValidationError, where: str) -> str:
    """Pydantic's errors in the words of a rules file: which key, what is wrong."""
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(entry)"
        kind = error["type"]
        if kind == "missing":
            lines.append(f"{where}: missing parameter {key!r}")
        elif kind == "extra_forbidden":
            lines.append(f"{where}: unknown key {key!r}")
        else:
            lines.append(f"{where}: {key}: {error['msg']} (got {error.get('input')!r})")
    return "\n".join(lines)
