"""How a company is recognised across mails: its corporate number, else its name as compared.

"㈱ ｻﾝﾌﾟﾙ精機" and "株式会社サンプル精機" are one company; "1234-5678-90123"
and "１２３４５６７８９０１２３" are one corporate number (法人番号). The
application and the consultation request keep both keys in indexed columns
(``company_key``, ``corporate_digits``), so "has this company applied
already" is one indexed lookup, not a pass over every application.
"""

from __future__ import annotations

import re
import unicodedata


def normalise_company_name(name: str) -> str:
    """NFKC, no spaces, case-folded, (株)/(有) spelt out: "㈱ サンプル" == "株式会社サンプル"."""
    text = unicodedata.normalize("NFKC", name)
    text = text.replace("(株)", "株式会社").replace("(有)", "有限会社")
    return re.sub(r"\s+", "", text).casefold()


def company_key(name: str | None) -> str | None:
    """The company name as compared: "㈱ ｻﾝﾌﾟﾙ精機" -> "株式会社サンプル精機"; None when blank."""
    if not name or not name.strip():
        return None
    return normalise_company_name(name)


def corporate_digits(number: str | None) -> str | None:
    """A corporate number's digits only (full-width and hyphens allowed), or None."""
    digits = re.sub(r"\D", "", unicodedata.normalize("NFKC", number or ""))
    return digits or None
