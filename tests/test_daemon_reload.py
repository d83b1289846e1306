"""SIGHUP's reload (mailbot/reload.py) on a copy of the shipped rules and templates, and the
CycleGate that swaps them in between cycles, never in the middle of one."""

from __future__ import annotations

import shutil
import threading
from datetime import date, timedelta

import pytest

from mailbot import PROJECT_ROOT, config, reload
from mailbot.daemon import CycleGate
from mailbot.services import build


@pytest.fixture
def services(tmp_path):
    """Services on copies of rules/ and templates/ that a test may break."""
    shutil.copytree(PROJECT_ROOT / "rules", tmp_path / "rules")
    shutil.copytree(PROJECT_ROOT / "templates", tmp_path / "templates")
    today = date.today()
    settings = config.validate({
        "imap": {"host": "127.0.0.1", "port": 1143, "username": "u", "password": "p", "security": "none"},
        "smtp": {"host": "127.0.0.1", "port": 1025, "security": "none", "from_address": "chizai@example.jp"},
        "database": {"url": f"sqlite:///{tmp_path / 'mailbot.db'}"},
        "program": {"opens": today - timedelta(days=1), "closes": today + timedelta(days=30), "cap": 18},
        "service": {"rules_dir": "rules", "templates_dir": "templates"},
    }, base_dir=tmp_path, origin="test")
    return build(settings)


def rules_file(services, name: str):
    return services.settings.path(services.settings.service.rules_dir) / name


def template_file(services, name: str):
    return services.settings.path(services.settings.service.templates_dir) / "ja" / name


def test_a_valid_change_gives_new_parts_and_apply_puts_them_in_use(services):
    path = rules_file(services, "regions.toml")
    path.write_text(path.read_text(encoding="utf-8").replace("hours_per_country = 23", "hours_per_country = 30"),
                    encoding="utf-8")
    assert services.rules.hours_cap == 23
    parts = reload.prepare(services)
    assert isinstance(parts, reload.Parts) and parts.rulesets["application"].hours_cap == 30
    assert services.rules.hours_cap == 23  # prepare alone changes nothing
    reload.apply(services, parts)
    assert services.rules.hours_cap == 30 and services.renderer is parts.renderer


@pytest.mark.parametrize("name, breakage, named", [
    ("application.toml", lambda t: t + '\n[[checks]]\ncheck = "no_such_check"\nmessage = "x"\n',
     "application.toml: checks["),
    ("consultation.toml", lambda t: t.replace("[labels]", "[labelz]", 1), "consultation.toml"),
    ("triage.toml", lambda t: t + "\n[mystery]\nsenders = []\n", "triage.toml"),
    ("regions.toml", lambda t: t + "\n[limits\n", "regions.toml"),
])
def test_a_broken_rule_file_is_refused_naming_it_and_nothing_changes(services, name, breakage, named):
    before = (services.rulesets, services.triage, services.renderer)
    path = rules_file(services, name)
    path.write_text(breakage(path.read_text(encoding="utf-8")), encoding="utf-8")
    outcome = reload.prepare(services)
    assert isinstance(outcome, reload.Refusal), outcome
    assert named in outcome.reason
    assert (services.rulesets, services.triage, services.renderer) == before


def test_a_template_with_a_syntax_error_is_refused_before_any_mail_needs_it(services):
    template_file(services, "withdrawn.txt.j2").write_text("{% block subject %}{{ oops {% endblock %}",
                                                          encoding="utf-8")
    outcome = reload.prepare(services)
    assert isinstance(outcome, reload.Refusal) and "withdrawn.txt.j2" in outcome.reason


def test_a_template_in_use_that_disappeared_is_refused(services):
    at_start = reload.template_names(services.renderer)
    template_file(services, "receipt.txt.j2").unlink()
    assert isinstance(reload.prepare(services), reload.Parts)  # nothing to compare with
    outcome = reload.prepare(services, at_start)
    assert isinstance(outcome, reload.Refusal)
    assert "template not found" in outcome.reason and "receipt.txt.j2" in outcome.reason


def test_between_cycles_waits_for_the_cycle_in_hand_then_runs_before_the_next():
    events: list[str] = []
    began, release = threading.Event(), threading.Event()

    def cycle() -> None:
        events.append("cycle start")
        began.set()
        release.wait(10)
        events.append("cycle end")

    gate = CycleGate(cycle)
    worker = threading.Thread(target=gate.run)
    worker.start()
    assert began.wait(5)
    gate.request()  # one more cycle asked for while the first runs
    gate.between_cycles(lambda: events.append("swap"))
    assert events == ["cycle start"]  # handed over, not run in the middle of the cycle
    release.set()
    worker.join(5)
    assert events == ["cycle start", "cycle end", "swap", "cycle start", "cycle end"]


def test_between_cycles_runs_at_once_when_no_cycle_runs_and_a_closed_gate_starts_none():
    ran: list[str] = []
    gate = CycleGate(lambda: ran.append("cycle"))
    gate.between_cycles(lambda: ran.append("swap"))
    assert ran == ["swap"]
    gate.close()
    gate.run()
    gate.request()
    assert ran == ["swap"] and gate.cycles == 0


def test_a_cycle_asked_for_during_a_swap_is_woken_after_it_not_run_by_the_swapping_thread():
    woken: list[str] = []
    gate = CycleGate(lambda: woken.append("cycle here"), wake=lambda: woken.append("woken"))

    def swap() -> None:
        gate.run()  # the scheduler's job fires while the signal handler swaps
        woken.append("swap")

    gate.between_cycles(swap)
    assert woken == ["swap", "woken"] and gate.cycles == 0


def test_a_cycle_that_raises_frees_the_gate():
    def failing() -> None:
        raise RuntimeError("database locked")

    gate = CycleGate(failing)
    with pytest.raises(RuntimeError):
        gate.run()
    assert gate.busy_seconds() is None
    ran: list[str] = []
    gate.between_cycles(lambda: ran.append("swap"))
    assert ran == ["swap"]
