"""The company seal (押印): present, on the representative's row, red.

Three tiny checks, one verdict each, so each has its own code, severity and
words in rules/application.toml (``seal_missing``, ``seal_misplaced``,
``seal_not_red``). Problems are reported on the pseudo-field ``seal``.
"""

from __future__ import annotations

from mailbot.checks.base import Check, register
from mailbot.checks.problem import Problem
from mailbot.forms.reading import FormReading, Seal

SEAL_FIELD = "seal"


class _SealCheck(Check):
    def check(self, reading: FormReading) -> list[Problem]:
        if not self.applies(reading) or not self.wrong(reading.seal):
            return []
        return [self.problem(SEAL_FIELD, reading)]

    def wrong(self, seal: Seal) -> bool:
        raise NotImplementedError


@register
class SealPresent(_SealCheck):
    """No stamp anywhere on the form page."""

    name = "seal_present"
    default_code = "seal_missing"

    def wrong(self, seal: Seal) -> bool:
        return not seal.present


@register
class SealPlacement(_SealCheck):
    """A stamp, but not on or beside the 印 mark of the 代表者氏名 row."""

    name = "seal_placement"
    default_code = "seal_misplaced"

    def wrong(self, seal: Seal) -> bool:
        return seal.present and not seal.near_field


@register
class SealColor(_SealCheck):
    """A stamp in the right place that is not red (black, blue or unknown): staff decide."""

    name = "seal_color"
    default_code = "seal_not_red"
    default_severity = "warning"

    def wrong(self, seal: Seal) -> bool:
        return seal.present and seal.near_field and seal.color != "red"
