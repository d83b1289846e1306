"""The hours asked for: consultation + training, more than zero and within the cap.

The cap (23 hours per company and country) is a number in rules/regions.toml
``[limits] hours_per_country``; an entry may set its own ``max``. A field
that is blank counts as 0 hours (only one of the two is required); a field
that is not a whole number is left to its "number" entry, so the sum is not
judged at all then.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from mailbot.checks.base import Check, is_blank, register
from mailbot.checks.fields import as_number
from mailbot.checks.problem import Problem
from mailbot.forms.reading import FormReading


def total_hours(reading: FormReading, keys: tuple[str, ...]) -> int | None:
    """The sum of the hour fields (blank = 0), or None when one is not a whole number ≥ 0."""
    total = 0
    for key in keys:
        value = reading.fields.get(key)
        if is_blank(value):
            continue
        number = as_number(value)
        if number is None or number < 0 or number != int(number):
            return None
        total += int(number)
    return total


class _TotalCheck(Check):
    """Shared part: the problem is reported on the first of the fields."""

    placeholders = frozenset({"total", "max"})

    def check(self, reading: FormReading) -> list[Problem]:
        if not self.applies(reading):
            return []
        total = total_hours(reading, self.entry.fields)
        if total is None or self.fine(total):
            return []
        return [self.problem(self.entry.fields[0], reading, total=total, max=self.cap)]

    @property
    def cap(self) -> int:
        return self.context.hours_cap

    def fine(self, total: int) -> bool:
        raise NotImplementedError


@register
class HoursTotalPositive(_TotalCheck):
    """At least one hour of consultation or training is asked for."""

    name = "hours_total_positive"
    default_code = "hours_total_zero"

    def fine(self, total: int) -> bool:
        return total > 0


class MaxParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    max: int | None = None  # default: [limits] hours_per_country


@register
class HoursTotalMax(_TotalCheck):
    """No more hours than the per-country cap."""

    name = "hours_total_max"
    default_code = "hours_total_over_cap"
    Params = MaxParams

    @property
    def cap(self) -> int:
        return self.params.max if self.params.max is not None else self.context.hours_cap

    def fine(self, total: int) -> bool:
        return total <= self.cap
