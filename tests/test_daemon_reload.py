"""SIGHUP's reload (mailbot/reload.py) on a copy of the shipped rules and templates, and the
CycleGate that swaps them in between cycles, never in the middle of one."""

from __future__ import annotations

import logging
import shutil
import threading
from datetime import date, timedelta

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from mailbot import PROJECT_ROOT, config, reload
from mailbot.daemon import CycleGate, Daemon
from mailbot.services import build


def program_services(folder, program_id: str = config.DEFAULT_PROGRAM):
    """Services on copies of rules/ and templates/ in ``folder`` that a test may break."""
    folder.mkdir(exist_ok=True)
    shutil.copytree(PROJECT_ROOT / "rules", folder / "rules")
    shutil.copytree(PROJECT_ROOT / "templates", folder / "templates")
    today = date.today()
    settings = config.validate({
        "imap": {"host": "127.0.0.1", "port": 1143, "username": program_id, "password": "p", "security": "none"},
        "smtp": {"host": "127.0.0.1", "port": 1025, "security": "none", "from_address": f"{program_id}@example.jp"},
        "database": {"url": f"sqlite:///{folder / 'mailbot.db'}"},
        "program": {"opens": today - timedelta(days=1), "closes": today + timedelta(days=30), "cap": 18},
        "service": {"rules_dir": "rules", "templates_dir": "templates"},
    }, base_dir=folder, origin="test", program_id=program_id)
    return build(settings)


@pytest.fixture
def services(tmp_path):
    return program_services(tmp_path)


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


def test_sighup_with_two_programs_refuses_only_the_broken_programs_files(tmp_path, caplog):
    """GIVEN a daemon serving ts and design, each on its own rules folder
    WHEN both change their hour limit but design's application.toml is broken, and SIGHUP's reload runs
    THEN ts takes its new rules, design keeps its old ones, and the refusal names design and the file."""
    ts, design = program_services(tmp_path / "ts", "ts"), program_services(tmp_path / "design", "design")
    for services in (ts, design):
        path = rules_file(services, "regions.toml")
        path.write_text(path.read_text(encoding="utf-8").replace("hours_per_country = 23", "hours_per_country = 30"),
                        encoding="utf-8")
    broken = rules_file(design, "application.toml")
    broken.write_text(broken.read_text(encoding="utf-8") + '\n[[checks]]\ncheck = "no_such_check"\nmessage = "x"\n',
                      encoding="utf-8")
    daemon = Daemon([ts, design], BackgroundScheduler(timezone="Asia/Tokyo"))
    with caplog.at_level(logging.INFO):
        assert daemon.reload() is False  # not every program took its files
    assert (ts.rules.hours_cap, design.rules.hours_cap) == (30, 23)
    [refusal] = [r for r in caplog.records if r.getMessage().startswith("reload refused")]
    assert refusal.fields["program"] == "design" and "application.toml: checks[" in refusal.getMessage()
    [reloaded] = [r for r in caplog.records if r.getMessage().startswith("reloaded rules")]
    assert reloaded.fields["program"] == "ts"
