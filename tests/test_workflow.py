"""The workflow table: legal moves leave history rows, illegal ones raise and leave nothing."""

from __future__ import annotations

import pytest
from sqlmodel import select

from mailbot import workflow
from mailbot.db import make_engine, transaction
from mailbot.errors import WorkflowError
from mailbot.models import Application, Transition


@pytest.fixture
def engine(tmp_path):
    return make_engine(f"sqlite:///{tmp_path / 'mailbot.db'}")


def new_app(number: str = "TS-2026-0001") -> Application:
    return Application(reception_number=number, state="received", sender="tanaka@example.co.jp")


def test_start_records_the_first_transition_from_none(engine):
    with transaction(engine) as session:
        app = new_app()
        row = workflow.start(session, app, "received", actor="service", reason="mail arrived",
                             raw_message_id=None)
        assert app.id is not None and row.application_id == app.id
    with transaction(engine) as session:
        (only,) = session.exec(select(Transition)).all()
        assert (only.from_state, only.to_state, only.actor, only.reason) == (
            None, "received", "service", "mail arrived")


def test_a_path_to_completed_leaves_the_whole_history(engine):
    path = ["needs_fix", "needs_fix", "queued", "adopted", "documents_requested",
            "documents_received", "interview_scheduled", "in_service",
            "followup_scheduled", "completed"]
    with transaction(engine) as session:
        app = new_app()
        workflow.start(session, app, "received", actor="service", reason="arrived")
        for state in path:
            workflow.move(session, app, state, actor="泉", reason=f"to {state}")
    with transaction(engine) as session:
        app = session.exec(select(Application)).one()
        steps = [(t.from_state, t.to_state) for t in workflow.history(session, app)]
    assert app.state == "completed"
    assert steps == list(zip([None, "received", *path[:-1]], ["received", *path]))


@pytest.mark.parametrize("from_state, to_state", [
    ("received", "adopted"), ("queued", "waitlisted"), ("adopted", "queued"),
    ("completed", "in_service"), ("withdrawn", "queued"), ("declined", "queued"),
])
def test_illegal_moves_raise_naming_both_states(engine, from_state, to_state):
    with transaction(engine) as session:
        app = new_app()
        workflow.start(session, app, "received", actor="service", reason="arrived")
        app.state = from_state  # put it there directly: only the move under test matters
        before = len(workflow.history(session, app))
        with pytest.raises(WorkflowError) as caught:
            workflow.move(session, app, to_state, actor="service", reason="x")
        assert repr(from_state) in str(caught.value) and repr(to_state) in str(caught.value)
        assert app.state == from_state and len(workflow.history(session, app)) == before


def test_unknown_state_and_bad_start(engine):
    with transaction(engine) as session:
        app = new_app()
        with pytest.raises(WorkflowError, match="cannot start in state 'queued'"):
            workflow.start(session, app, "queued", actor="service", reason="x")
        workflow.start(session, app, "received", actor="service", reason="x")
        with pytest.raises(WorkflowError, match="already started"):
            workflow.start(session, app, "received", actor="service", reason="x")
        with pytest.raises(WorkflowError, match="unknown state 'lost'"):
            workflow.move(session, app, "lost", actor="service", reason="x")


def test_nothing_is_committed_when_the_caller_fails(engine):
    with pytest.raises(RuntimeError):
        with transaction(engine) as session:
            app = new_app()
            workflow.start(session, app, "received", actor="service", reason="x")
            workflow.move(session, app, "queued", actor="service", reason="x")
            raise RuntimeError("the reply could not be rendered")
    with transaction(engine) as session:
        assert session.exec(select(Transition)).all() == []
        assert session.exec(select(Application)).all() == []


def test_move_updates_updated_at(engine):
    with transaction(engine) as session:
        app = new_app()
        workflow.start(session, app, "received", actor="service", reason="x")
        before = app.updated_at
        workflow.move(session, app, "needs_fix", actor="service", reason="x")
        assert app.updated_at > before


def test_the_table_is_closed():
    # Every target is a known state; final states have no way out; every state is reachable.
    for nexts in workflow.TRANSITIONS.values():
        assert nexts <= workflow.STATES
    assert workflow.FINAL_STATES == {"completed", "declined", "withdrawn"}
    reachable = set(workflow.INITIAL_STATES)
    for _ in workflow.STATES:
        reachable |= {n for s in reachable for n in workflow.TRANSITIONS[s]}
    assert reachable == workflow.STATES
