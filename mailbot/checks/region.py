"""The target country or region must be one the program serves (rules/regions.toml)."""

from __future__ import annotations

from typing import Any

from mailbot.checks.base import FieldCheck, register

_OK = None


def is_eligible(value: Any, regions: set[str] | Any, europe: set[str] | Any) -> bool:
    """CN, TH, VN, ID, IN (as listed) or EU:<code> with the code in the European list."""
    if not isinstance(value, str):
        return False
    if value.startswith("EU:"):
        return value.removeprefix("EU:") in europe
    return value in regions


@register
class Region(FieldCheck):
    """One eligible region; {regions} and {europe} name them in Japanese for the message."""

    name = "region"
    default_code = "{field}_not_eligible"
    placeholders = frozenset({"regions", "europe"})

    def judge(self, value: Any) -> dict[str, Any] | None:
        if is_eligible(value, self.context.regions, self.context.europe):
            return _OK
        return {
            "regions": "、".join(self.context.regions.values()),
            "europe": "、".join(self.context.europe.values()),
        }
