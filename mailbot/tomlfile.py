"""Reading a TOML file (config or rules) with errors that name the file."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from mailbot.errors import MailbotError


def read(path: Path, error: type[MailbotError], *, what: str = "rules file", hint: str = "") -> dict[str, Any]:
    """The file's tables; ``error`` (ConfigError, RulesError) when missing or not TOML."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise error(f"{path}: {what} not found{hint}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from None
