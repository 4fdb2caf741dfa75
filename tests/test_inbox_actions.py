"""Actions on tasks: claim, reassign, delegate and resolve, absences, snooze, priority,
comments with mentions, drafts, bulk actions — and who may do them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.core.audit import AuditEvent
from app.core.errors import Conflict, PermissionDenied, ValidationFailed
from app.core.extensions import db
from app.engine import services as engine
from app.engine.models import TaskCandidate, TaskStatus
from app.inbox import queries, services
from app.inbox.models import Notification
from tests.inbox_support import make_agents, start_case, user

ANSWER = {"decision": "accord", "reponse": "Votre demande est accordée."}


@pytest.fixture
def agents(app, make_user):
    return make_agents(app, make_user)


def notes(email: str) -> list[tuple[str, int | None]]:
    return [(n.kind, n.task_id) for n in services.notifications(user(email))]


def test_claim_by_second_agent_is_refused_with_conflict(app, agents):
    with app.app_context():
        task_id = start_case()
        services.claim(task_id, user(agents.alice))
        with pytest.raises(Conflict):
            services.claim(task_id, user(agents.bob))
        assert engine.get_task(task_id).assignee.email == agents.alice


def test_agent_outside_the_baskets_may_not_claim(app, agents):
    with app.app_context():
        task_id = start_case()
        with pytest.raises(PermissionDenied):
            services.claim(task_id, user(agents.chloe))


def test_claim_and_unclaim_keep_the_basket_index_in_step(app, agents):
    with app.app_context():
        task_id = start_case()
        flags = lambda: {  # noqa: E731
            c.unclaimed
            for c in db.session.execute(
                select(TaskCandidate).where(TaskCandidate.task_id == task_id)
            ).scalars()
        }
        assert flags() == {True}
        services.claim(task_id, user(agents.alice))
        assert flags() == {False}
        with pytest.raises(Conflict):
            services.unclaim(task_id, user(agents.bob))
        services.unclaim(task_id, user(agents.alice))
        assert flags() == {True}
        assert engine.get_task(task_id).assignee_id is None


def test_reassign_needs_a_reason_and_a_colleague_who_may_take_the_task(app, agents):
    with app.app_context():
        task_id = start_case()
        alice = user(agents.alice)
        services.claim(task_id, alice)
        with pytest.raises(ValidationFailed) as no_reason:
            services.reassign(task_id, agents.bob, alice, "  ")
        assert no_reason.value.errors[0]["field"] == "reason"
        with pytest.raises(ValidationFailed) as not_candidate:
            services.reassign(task_id, agents.chloe, alice, "Congés")
        assert "corbeille" in not_candidate.value.errors[0]["message"]
        with pytest.raises(Conflict):
            services.reassign(task_id, agents.denis, user(agents.bob), "Je la donne")
        services.reassign(task_id, agents.bob, alice, "Dossier connu de Bob")
        assert engine.get_task(task_id).assignee.email == agents.bob
        assert ("assigned", task_id) in notes(agents.bob)
        event = db.session.execute(
            select(AuditEvent).where(AuditEvent.action == "task.assign")
        ).scalar_one()
        assert event.data["reason"] == "Dossier connu de Bob"


def test_admin_may_reassign_to_anyone(app, agents):
    with app.app_context():
        task_id = start_case()
        services.reassign(task_id, agents.chloe, user(agents.admin), "Renfort juridique")
        assert engine.get_task(task_id).assignee.email == agents.chloe


def test_delegated_task_comes_back_to_its_owner_with_the_contribution(app, agents):
    with app.app_context():
        task_id = start_case()
        alice, chloe = user(agents.alice), user(agents.chloe)
        services.claim(task_id, alice)
        services.delegate(task_id, agents.chloe, alice, "Avis juridique")
        task = engine.get_task(task_id)
        assert (task.assignee.email, task.owner.email, task.delegation_state) == (
            agents.chloe,
            agents.alice,
            "pending",
        )
        assert [t.id for t in queries.list_tasks(chloe, "mine").tasks] == [task_id]
        assert ("delegated", task_id) in notes(agents.chloe)
        with pytest.raises(Conflict):
            services.complete(task_id, ANSWER, chloe)
        with pytest.raises(Conflict):
            services.unclaim(task_id, chloe)
        with pytest.raises(PermissionDenied):
            services.resolve(task_id, user(agents.bob), "Je m'en mêle")
        services.resolve(task_id, chloe, "Pas d'obstacle juridique.", {"reponse": "Accord."})
        task = engine.get_task(task_id)
        assert (task.assignee.email, task.delegation_state) == (agents.alice, "resolved")
        assert services.draft_for(task, alice).data == {"reponse": "Accord."}
        assert ("resolved", task_id) in notes(agents.alice)
        assert [c.body for c in services.task_comments(task)] == ["Pas d'obstacle juridique."]
        services.complete(task_id, ANSWER, alice)
        assert engine.get_task(task_id).status == TaskStatus.COMPLETED
        assert services.draft_for(task, alice) is None


def test_substitute_sees_and_completes_the_absent_agents_tasks_during_the_absence(
    app, agents, time_machine
):
    with app.app_context():
        task_id = start_case()
        alice, chloe = user(agents.alice), user(agents.chloe)
        services.claim(task_id, alice)
        today = queries.today()
        services.declare_absence(
            alice, agents.chloe, today + timedelta(days=1), today + timedelta(days=5), alice
        )
        assert queries.list_tasks(chloe, "mine").tasks == []
        with pytest.raises(PermissionDenied):
            engine.get_task(task_id, chloe)
    time_machine.move_to(queries.today() + timedelta(days=2))
    with app.app_context():
        chloe = user(agents.chloe)
        assert [t.id for t in queries.list_tasks(chloe, "mine").tasks] == [task_id]
        task = engine.get_task(task_id, chloe)
        from app.engine.permissions import acts_for

        assert acts_for(chloe, task) == user(agents.alice).id
        services.complete(task_id, ANSWER, chloe)
        done = engine.get_task(task_id)
        assert done.completed_by.email == agents.chloe
        behalf = db.session.execute(
            select(AuditEvent).where(AuditEvent.action == "task.complete_on_behalf")
        ).scalar_one()
        assert behalf.data["on_behalf_of"] == user(agents.alice).id


def test_only_the_absent_agent_or_an_admin_declares_an_absence(app, agents):
    with app.app_context():
        alice = user(agents.alice)
        today = queries.today()
        with pytest.raises(PermissionDenied):
            services.declare_absence(alice, agents.bob, today, today, user(agents.chloe))
        with pytest.raises(ValidationFailed) as refused:
            services.declare_absence(alice, agents.alice, today + timedelta(days=2), today, alice)
        assert {e["field"] for e in refused.value.errors} == {"substitute", "ends_on"}
        absence = services.declare_absence(alice, agents.bob, today, today, user(agents.admin))
        assert [a.id for a in services.absences_of(user(agents.bob))] == [absence.id]
        services.cancel_absence(absence.id, alice)
        assert services.absences_of(alice) == []


def test_snooze_hides_a_task_from_a_traiter_until_its_follow_up_date(app, agents, time_machine):
    with app.app_context():
        task_id = start_case()
        alice = user(agents.alice)
        with pytest.raises(Conflict):
            services.snooze(task_id, alice, queries.today() + timedelta(days=1))
        services.claim(task_id, alice)
        with pytest.raises(ValidationFailed):
            services.snooze(task_id, alice, queries.today())
        services.snooze(task_id, alice, queries.today() + timedelta(days=2))
        assert queries.list_tasks(alice, "mine").tasks == []
        assert queries.view_counts(alice)["mine"] == 0
    time_machine.move_to(queries.today() + timedelta(days=2, hours=12))
    with app.app_context():
        assert [t.id for t in queries.list_tasks(user(agents.alice), "mine").tasks] == [task_id]


def test_priority_is_changed_by_the_holder_only(app, agents):
    with app.app_context():
        task_id = start_case(priority=50)
        alice = user(agents.alice)
        services.claim(task_id, alice)
        with pytest.raises(Conflict):
            services.set_priority(task_id, user(agents.bob), 90)
        with pytest.raises(ValidationFailed):
            services.set_priority(task_id, alice, 150)
        assert services.set_priority(task_id, alice, 90).priority == 90


def test_comment_mentions_notify_colleagues_who_can_see_the_task(app, agents):
    with app.app_context():
        task_id = start_case()
        alice = user(agents.alice)
        comment = services.add_comment(task_id, alice, "Bob, peux-tu relire ? @bob.leroy")
        assert comment.mentions == [user(agents.bob).id]
        assert ("mention", task_id) in notes(agents.bob)
        with pytest.raises(ValidationFailed) as blind:
            services.add_comment(task_id, alice, f"Pour info @{agents.outsider}")
        assert "accès" in blind.value.errors[0]["message"]
        with pytest.raises(ValidationFailed) as unknown:
            services.add_comment(task_id, alice, "Voir avec @personne.inconnue")
        assert "@personne.inconnue" in unknown.value.errors[0]["message"]
        with pytest.raises(PermissionDenied):
            services.add_comment(task_id, user(agents.outsider), "Bonjour")


def test_completing_with_invalid_form_data_lists_french_errors_per_field(app, agents):
    with app.app_context():
        task_id = start_case()
        alice = user(agents.alice)
        services.claim(task_id, alice)
        with pytest.raises(ValidationFailed) as refused:
            services.complete(task_id, {"decision": "peut-être", "reponse": "court"}, alice)
        messages = {e["field"]: e["message"] for e in refused.value.errors}
        assert messages["decision"].startswith("Valeur non autorisée")
        assert messages["reponse"] == "Au moins 10 caractères."
        assert engine.get_task(task_id).status == TaskStatus.OPEN


def test_draft_is_kept_per_agent_until_the_task_is_completed(app, agents):
    with app.app_context():
        task_id = start_case()
        alice = user(agents.alice)
        services.claim(task_id, alice)
        services.save_draft(task_id, alice, {"reponse": "Premier jet"})
        task = engine.get_task(task_id)
        assert services.draft_for(task, alice).data == {"reponse": "Premier jet"}
        assert services.draft_for(task, user(agents.bob)) is None
        with pytest.raises(PermissionDenied):
            services.save_draft(task_id, user(agents.chloe), {"reponse": "x"})
        services.complete(task_id, ANSWER, alice)
        assert services.draft_for(task, alice) is None


def test_bulk_claim_reports_one_result_per_task(app, agents):
    with app.app_context():
        free_1, taken, free_2 = (start_case(chrono=f"2026-{i}") for i in range(3))
        legal = start_case(group="juridique")
        services.claim(taken, user(agents.bob))
        results = services.bulk("claim", [free_1, taken, free_2, legal, 999999], user(agents.alice))
        outcome = {r.id: (r.ok, r.status) for r in results}
        assert outcome == {
            free_1: (True, 200),
            taken: (False, 409),
            free_2: (True, 200),
            legal: (False, 403),
            999999: (False, 404),
        }
        assert engine.get_task(free_2).assignee.email == agents.alice


def test_bulk_reassign_and_complete_report_each_failure(app, agents):
    with app.app_context():
        first, second = start_case(chrono="2026-1"), start_case(chrono="2026-2")
        alice = user(agents.alice)
        services.bulk("claim", [first, second], alice)
        results = services.bulk(
            "reassign", [first, second], alice, assignee=agents.bob, reason="Réorganisation"
        )
        assert all(r.ok for r in results)
        bob = user(agents.bob)
        results = services.bulk("complete", [first, second], bob, data={"decision": "accord"})
        assert {(r.ok, r.status) for r in results} == {(False, 422)}
        assert "reponse" in results[0].detail
        results = services.bulk("complete", [first, second], bob, data=ANSWER)
        assert all(r.ok for r in results)
        with pytest.raises(ValidationFailed):
            services.bulk("delete", [first], bob)


def test_new_task_given_by_the_circuit_notifies_its_assignee(app, agents):
    with app.app_context():
        task_id = start_case(validateur=agents.denis)
        alice = user(agents.alice)
        services.claim(task_id, alice)
        services.complete(task_id, ANSWER, alice)
        denis = user(agents.denis)
        visa = queries.list_tasks(denis, "mine").tasks
        assert [t.element_id for t in visa] == ["Task_viser"]
        assert ("assigned", visa[0].id) in notes(agents.denis)
        assert services.unread_count(denis) == 1
        services.mark_read(denis)
        assert services.unread_count(denis) == 0
        assert (
            db.session.execute(select(Notification).where(Notification.user_id == alice.id)).first()
            is None
        )
