"""Step 02: adoption in queue order up to the cap, out of order with a reason, decline,
withdraw and the waiting list's turn, automatic adoption; every mail checked.

The database is a real SQLite file, the templates and the step-03 documents
are the shipped ones; nothing is sent here (tests/e2e/test_adoption.py does).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlmodel import select

from mailbot import PROJECT_ROOT, admission, adoption, config, documents, workflow
from mailbot.db import transaction
from mailbot.errors import WorkflowError
from mailbot.models import Application, OutboxMessage, Transition
from mailbot.outbox import attachments_of
from mailbot.services import build

T0 = datetime(2026, 6, 1, 0, 0, tzinfo=timezone.utc)
STAFF = "izumi"


def write_config(tmp_path: Path, *, cap: int = 3, auto_adopt: bool = False) -> Path:
    """This checkout's config.toml with its own database, a small cap, and auto_adopt as asked."""
    text = (PROJECT_ROOT / "config.toml").read_text(encoding="utf-8")
    for old, new in [
        ('url = "sqlite:///data/mailbot.db"', f'url = "sqlite:///{tmp_path / "mailbot.db"}"'),
        ('rules_dir = "rules"', f'rules_dir = "{PROJECT_ROOT / "rules"}"'),
        ('templates_dir = "templates"', f'templates_dir = "{PROJECT_ROOT / "templates"}"'),
        ("cap = 18", f"cap = {cap}"),
        ("auto_adopt = false", f"auto_adopt = {str(auto_adopt).lower()}"),
    ]:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def make(tmp_path: Path, **options):
    """Services on this test's database (cap 3 unless told)."""
    return build(config.load(write_config(tmp_path, **options), environ={}))


def contact(n: int) -> str:
    return f"tanaka@company{n}.example.jp"


def sender(n: int) -> str:
    return f"soumu@company{n}.example.jp"


def apply(services, n: int) -> str:
    """Company n's complete application, arrived n minutes after T0: queued or waitlisted."""
    with transaction(services.engine) as session:
        app = Application(
            reception_number=admission.next_reception_number(session, "TS", 2026), state="received",
            company_name=f"株式会社テスト{n}", country="VN", contact_email=contact(n), sender=sender(n),
            fields={"contact_name": f"田中 {n}郎"}, thread_message_id=f"<apply-{n}@company{n}.example.jp>",
            seal={"present": True, "near_field": True},
        )
        workflow.start(session, app, "received", actor="service", reason="mail arrived")
        admission.admit(session, app, arrived_at=T0 + timedelta(minutes=n), uid=n,
                        program=services.settings.program)
        return app.reception_number


def number(n: int) -> str:
    return f"TS-2026-{n:04d}"


def get(services, reception_number: str) -> Application:
    with transaction(services.engine) as session:
        return adoption.find(session, reception_number)


def mails(services, kind: str | None = None) -> list[OutboxMessage]:
    with transaction(services.engine) as session:
        rows = session.exec(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    return [r for r in rows if kind is None or r.kind == kind]


def moves(services, reception_number: str) -> list[tuple]:
    with transaction(services.engine) as session:
        app = adoption.find(session, reception_number)
        return [(t.from_state, t.to_state, t.actor, t.reason) for t in workflow.history(session, app)]


def run(services, work):
    with transaction(services.engine) as session:
        return work(session)


@pytest.fixture
def four(tmp_path):
    """Cap 3: companies 1-3 queued, company 4 first on the waiting list."""
    services = make(tmp_path)
    for n in range(1, 5):
        apply(services, n)
    return services


# --- adopt in order ---------------------------------------------------------------


def test_adopt_takes_the_queue_in_order_up_to_the_cap(four):
    done = run(four, lambda s: adoption.adopt_next(s, four, actor=STAFF))
    assert [o.app.reception_number for o in done] == [number(1), number(2), number(3)]
    assert [get(four, number(n)).state for n in range(1, 5)] == ["documents_requested"] * 3 + ["waitlisted"]
    assert moves(four, number(2))[-2:] == [
        ("queued", "adopted", STAFF, "next in queue order"),
        ("adopted", "documents_requested", STAFF, "adoption mail asks for the two step-03 documents")]
    assert [m.to_addrs for m in mails(four, "adopted")] == [[contact(n), sender(n)] for n in (1, 2, 3)]
    assert run(four, lambda s: adoption.adopt_next(s, four, actor=STAFF)) == []
    assert len(mails(four)) == 3


def test_the_adoption_mail_carries_the_two_documents_and_the_next_steps(four):
    run(four, lambda s: adoption.adopt_named(s, four, [number(1)], actor=STAFF))
    [mail] = mails(four)
    assert mail.kind == "adopted" and mail.to_addrs == [contact(1), sender(1)]
    assert number(1) in mail.subject and "採択" in mail.subject
    assert mail.in_reply_to == "<apply-1@company1.example.jp>" and mail.automatic is False
    with transaction(four.engine) as session:
        files = attachments_of(session, mail.id)
    expected = documents.blank_files(four.settings)
    assert [(f.filename, f.content_type, f.data) for f in files] == [
        (f.filename, f.content_type, f.data) for f in expected]
    assert [f.filename.rsplit(".", 1)[0] for f in files] == ["保有情報リスト", "情報管理体制セルフチェックシート"]
    for words in ["株式会社テスト1", "田中 1郎 様", "保有情報リスト", "情報管理体制セルフチェックシート",
                  "本メールへのご返信", "7日以内", "専門家との面談", "23時間", "ベトナム",
                  "2027年1月31日（日）まで", "フォローアップ面談"]:
        assert words in mail.body, words
    assert "受け付け、審査の結果" not in mail.body  # the receipt wording is for automatic adoption only


def test_adopt_stops_at_the_cap_when_it_is_lowered(four, tmp_path):
    smaller = make(tmp_path, cap=2)
    done = run(smaller, lambda s: adoption.adopt_next(s, smaller, actor=STAFF))
    assert [o.app.reception_number for o in done] == [number(1), number(2)]
    with pytest.raises(WorkflowError, match=r"TS-2026-0003: the cap of 2 is reached"):
        run(smaller, lambda s: adoption.adopt_named(s, smaller, [number(3)], actor=STAFF, reason="x"))
    assert get(smaller, number(3)).state == "queued"


def test_out_of_order_needs_a_reason_naming_the_earlier_application(four):
    with pytest.raises(WorkflowError) as refused:
        run(four, lambda s: adoption.adopt_named(s, four, [number(3)], actor=STAFF))
    assert "TS-2026-0003 ('queued') is out of queue order: TS-2026-0001 ('queued') comes first" in str(refused.value)
    assert mails(four) == [] and get(four, number(3)).state == "queued"
    run(four, lambda s: adoption.adopt_named(s, four, [number(3)], actor=STAFF, reason="急ぎの案件（課長了承）"))
    assert moves(four, number(3))[-2][1:] == ("adopted", STAFF, "急ぎの案件（課長了承）")
    assert [get(four, number(n)).state for n in (1, 2)] == ["queued", "queued"]


def test_named_in_any_order_is_in_order_when_they_are_the_first(four):
    done = run(four, lambda s: adoption.adopt_named(s, four, [number(2), number(1), number(2)], actor=STAFF))
    assert [o.app.reception_number for o in done] == [number(1), number(2)]
    assert len(mails(four, "adopted")) == 2


def test_a_refusal_in_a_batch_changes_nothing(four):
    with pytest.raises(WorkflowError, match="TS-2026-0003"):
        run(four, lambda s: adoption.adopt_named(s, four, [number(1), number(3)], actor=STAFF))
    assert get(four, number(1)).state == "queued" and mails(four) == []


def test_a_waitlisted_one_needs_a_free_place_and_a_reason(four, tmp_path):
    with pytest.raises(WorkflowError, match=r"TS-2026-0004 is 'waitlisted' and all 3 places are taken"):
        run(four, lambda s: adoption.adopt_named(s, four, [number(4)], actor=STAFF, reason="x"))
    bigger = make(tmp_path, cap=4)
    run(bigger, lambda s: adoption.adopt_next(s, bigger, actor=STAFF))
    with pytest.raises(WorkflowError, match=r"TS-2026-0004 is 'waitlisted': adopting it before the queue needs --reason"):
        run(bigger, lambda s: adoption.adopt_named(s, bigger, [number(4)], actor=STAFF))
    run(bigger, lambda s: adoption.adopt_named(s, bigger, [number(4)], actor=STAFF, reason="枠の追加"))
    app = get(bigger, number(4))
    assert (app.state, app.position) == ("documents_requested", 4)


@pytest.mark.parametrize("state", ["received", "needs_fix", "adopted", "documents_requested", "declined",
                                   "withdrawn", "completed"])
def test_adopt_is_refused_from_other_states_naming_the_state(four, state):
    run(four, lambda s: _force(s, number(1), state))
    with pytest.raises(WorkflowError, match=f"TS-2026-0001: cannot adopt from '{state}'"):
        run(four, lambda s: adoption.adopt_named(s, four, [number(1)], actor=STAFF, reason="x"))


def test_an_unknown_reception_number_is_refused(four):
    with pytest.raises(WorkflowError, match="no application 'TS-2026-0099'"):
        run(four, lambda s: adoption.adopt_named(s, four, ["TS-2026-0099"], actor=STAFF))


def _force(session, reception_number: str, state: str) -> None:
    """Put an application in ``state`` directly (the states before it are tested elsewhere)."""
    app = adoption.find(session, reception_number)
    app.state = state
    session.add(app)


# --- decline ------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["received", "needs_fix", "queued", "waitlisted"])
def test_decline_from_the_four_states_sends_a_notice_without_the_reason(four, state):
    run(four, lambda s: _force(s, number(1), state))
    run(four, lambda s: adoption.decline(s, four, adoption.find(s, number(1)), actor=STAFF,
                                         reason="対象国に拠点なし（要件不備）"))
    assert get(four, number(1)).state == "declined"
    assert moves(four, number(1))[-1] == (state, "declined", STAFF, "対象国に拠点なし（要件不備）")
    [mail] = mails(four, "declined")
    assert mail.to_addrs == [contact(1), sender(1)] and number(1) in mail.subject
    assert mail.in_reply_to == "<apply-1@company1.example.jp>"
    assert "採択いたしかねる" in mail.body and "要件不備" not in mail.body and "【担当者より】" not in mail.body


def test_decline_quotes_the_note_for_the_applicant(four):
    run(four, lambda s: adoption.decline(s, four, adoption.find(s, number(2)), actor=STAFF, reason="r",
                                         note="次年度の募集にぜひご応募ください。"))
    [mail] = mails(four, "declined")
    assert "【担当者より】\n次年度の募集にぜひご応募ください。" in mail.body


@pytest.mark.parametrize("state", ["documents_requested", "in_service", "declined", "withdrawn"])
def test_decline_is_refused_after_adoption_naming_the_state(four, state):
    run(four, lambda s: _force(s, number(1), state))
    with pytest.raises(WorkflowError, match=f"cannot move from '{state}' to 'declined'"):
        run(four, lambda s: adoption.decline(s, four, adoption.find(s, number(1)), actor=STAFF, reason="r"))
    assert mails(four) == []


def test_decline_needs_a_reason(four):
    with pytest.raises(WorkflowError, match="a decline needs --reason"):
        run(four, lambda s: adoption.decline(s, four, adoption.find(s, number(1)), actor=STAFF, reason=" "))


def test_declining_a_queued_one_gives_its_place_to_the_waiting_list(four):
    outcome = run(four, lambda s: adoption.decline(s, four, adoption.find(s, number(1)), actor=STAFF, reason="r"))
    assert outcome.promoted.app.reception_number == number(4)
    assert get(four, number(4)).state == "queued"
    assert [m.kind for m in mails(four)] == ["declined", "place_offered"]


# --- withdraw and the waiting list ----------------------------------------------------


def test_withdrawal_offers_the_place_to_the_first_on_the_waiting_list(four):
    apply(four, 5)  # second on the waiting list
    outcome = run(four, lambda s: adoption.withdraw(s, four, adoption.find(s, number(2)), actor=STAFF,
                                                    reason="電話で辞退の連絡"))
    assert get(four, number(2)).state == "withdrawn"
    assert moves(four, number(2))[-1] == ("queued", "withdrawn", STAFF, "電話で辞退の連絡")
    assert outcome.promoted.app.reception_number == number(4)
    moved_up = get(four, number(4))
    assert (moved_up.state, moved_up.position) == ("queued", 3)
    assert moves(four, number(4))[-1] == ("waitlisted", "queued", "service", "place freed by TS-2026-0002 (withdrawn)")
    ack, offer = mails(four)
    assert (ack.kind, ack.to_addrs) == ("withdrawn", [contact(2), sender(2)])
    assert number(2) in ack.subject and "辞退として承りました" in ack.body
    assert (offer.kind, offer.to_addrs) == ("place_offered", [contact(4), sender(4)])
    assert number(4) in offer.subject and "繰り上げ" in offer.subject
    assert offer.in_reply_to == "<apply-4@company4.example.jp>"
    assert "受付順位：3番目" in offer.body and "田中 4郎 様" in offer.body
    # The second on the waiting list moves up without a mail: told "2nd", now 1st.
    with transaction(four.engine) as session:
        fifth = adoption.find(session, number(5))
        assert (fifth.state, fifth.position, admission.live_positions(session)[fifth.id]) == ("waitlisted", 2, 1)


def test_withdrawal_after_adoption_frees_the_place_too(four):
    run(four, lambda s: adoption.adopt_next(s, four, actor=STAFF))
    run(four, lambda s: adoption.withdraw(s, four, adoption.find(s, number(3)), actor=STAFF))
    assert moves(four, number(3))[-1] == ("documents_requested", "withdrawn", STAFF, "the applicant withdrew")
    assert get(four, number(4)).state == "queued"


def test_withdrawing_from_the_waiting_list_frees_no_place(four):
    apply(four, 5)
    outcome = run(four, lambda s: adoption.withdraw(s, four, adoption.find(s, number(4)), actor=STAFF))
    assert outcome.promoted is None and get(four, number(5)).state == "waitlisted"
    assert [m.kind for m in mails(four)] == ["withdrawn"]


@pytest.mark.parametrize("state", ["received", "followup_scheduled", "completed", "declined", "withdrawn"])
def test_withdraw_is_refused_from_states_that_cannot_withdraw(four, state):
    run(four, lambda s: _force(s, number(1), state))
    with pytest.raises(WorkflowError, match=f"cannot move from '{state}' to 'withdrawn'"):
        run(four, lambda s: adoption.withdraw(s, four, adoption.find(s, number(1)), actor=STAFF))
    assert mails(four) == []


def test_with_auto_adopt_the_freed_place_is_adopted_at_once(tmp_path):
    services = make(tmp_path, auto_adopt=True)
    for n in range(1, 5):
        apply(services, n)
    run(services, lambda s: adoption.adopt_next(s, services, actor=STAFF))
    run(services, lambda s: adoption.withdraw(s, services, adoption.find(s, number(1)), actor=STAFF))
    app = get(services, number(4))
    assert (app.state, app.position) == ("documents_requested", 3)
    assert [t[1:3] for t in moves(services, number(4))[-3:]] == [
        ("queued", "service"), ("adopted", "service"), ("documents_requested", "service")]
    offer = mails(services)[-1]
    assert (offer.kind, offer.to_addrs, offer.automatic) == ("adopted", [contact(4), sender(4)], True)


def test_auto_adopt_never_jumps_an_older_queued_application(tmp_path):
    services = make(tmp_path, cap=3)
    apply(services, 1)  # queued before auto_adopt was switched on
    services = make(tmp_path, cap=3, auto_adopt=True)
    apply(services, 2)
    switched_off = make(tmp_path, cap=3)
    with transaction(services.engine) as session:
        first, second = adoption.find(session, number(1)), adoption.find(session, number(2))
        assert adoption.can_auto_adopt(session, services, first) is True
        assert adoption.can_auto_adopt(session, services, second) is False
        assert adoption.can_auto_adopt(session, switched_off, first) is False


# --- English ------------------------------------------------------------------------------


def test_an_applicant_who_asked_for_english_gets_every_step_02_mail_in_english(four):
    from mailbot import language

    with transaction(four.engine) as session:
        for n in (1, 2, 4):
            language.choose(session, adoption.find(session, number(n)), "en", by=STAFF)
    run(four, lambda s: adoption.adopt_named(s, four, [number(1)], actor=STAFF))
    run(four, lambda s: adoption.decline(s, four, adoption.find(s, number(2)), actor=STAFF, reason="r",
                                         note="Please apply again next year."))
    run(four, lambda s: adoption.withdraw(s, four, adoption.find(s, number(1)), actor=STAFF))
    adopted, declined, offered, withdrawn = (mails(four, k)[0] for k in
                                            ("adopted", "declined", "place_offered", "withdrawn"))
    assert "is adopted" in adopted.subject and number(1) in adopted.subject
    assert "Dear 田中 1郎," in adopted.body and "up to 23 hours" in adopted.body and "2027-01-31" in adopted.body
    assert "A note from our staff:\nPlease apply again next year." in declined.body
    assert "A place has opened" in offered.subject and "Place in the queue: 3" in offered.body
    assert "withdrawal is recorded" in withdrawn.subject
    for mail, n in ((adopted, 1), (declined, 2), (offered, 4), (withdrawn, 1)):
        assert "平素より" not in mail.body and f"Reception number: {number(n)}" in mail.body
    with transaction(four.engine) as session:
        assert len(attachments_of(session, adopted.id)) == 2


def test_with_auto_adopt_a_promoted_one_still_waits_behind_an_older_queued_one(four, tmp_path):
    run(four, lambda s: adoption.adopt_named(s, four, [number(2), number(3)], actor=STAFF, reason="先行審査"))
    services = make(tmp_path, auto_adopt=True)  # switched on while company 1 is still queued
    run(services, lambda s: adoption.withdraw(s, services, adoption.find(s, number(2)), actor=STAFF))
    assert (get(services, number(1)).state, get(services, number(4)).state) == ("queued", "queued")
    assert mails(services)[-1].kind == "place_offered"
