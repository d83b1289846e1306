"""The corporate number (法人番号): 13 digits whose first digit checks the other twelve.

National Tax Agency rule: with P(n) the n-th of the twelve base digits
counted from the right and Q(n) = 1 for odd n, 2 for even n, the check digit
is 9 - (sum of P(n) * Q(n) mod 9).
"""

from __future__ import annotations

import re
from typing import Any

from mailbot.checks.base import FieldCheck, nfkc, register

_OK = None
_BAD: dict[str, Any] = {}


def check_digit(base: str) -> int:
    """The check digit for twelve base digits."""
    total = sum(int(d) * (1 if n % 2 else 2) for n, d in enumerate(reversed(base), start=1))
    return 9 - total % 9


def is_valid_corporate_number(value: Any) -> bool:
    """13 digits (spaces and hyphens ignored) with a correct check digit."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return False
    digits = re.sub(r"[\s\-]", "", nfkc(str(value)))
    if not re.fullmatch(r"\d{13}", digits):
        return False
    return int(digits[0]) == check_digit(digits[1:])


@register
class CorporateNumber(FieldCheck):
    """A National Tax Agency corporate number with a valid check digit."""

    name = "corporate_number"

    def judge(self, value: Any) -> dict[str, Any] | None:
        return _OK if is_valid_corporate_number(value) else _BAD
