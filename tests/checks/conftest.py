"""Fixtures for the check tests: the rules shipped in rules/, loaded once."""

from __future__ import annotations

import pytest

from mailbot import ruleset
from tests.checks.sample import RULES_DIR


@pytest.fixture(scope="session")
def rules() -> ruleset.RuleSet:
    return ruleset.load(RULES_DIR)
