"""Staff commands beyond the core ones, one module per area of the workflow.

Each module here (adoption, documents, schedule, hours, ...) adds its
commands to ``mailbot.cli.app`` when imported; ``mailbot.cli`` imports them
all. Keeping them apart keeps cli.py a table of contents, not a program.
"""

from __future__ import annotations

import getpass

import typer


def by_option() -> str:
    """``--by NAME``: the staff member recorded in the history (default: the login name)."""
    return typer.Option(_login_name(), "--by", metavar="NAME",
                        help="Who does this (recorded in the application's history).")


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers): still say it was staff
        return "staff"
