"""The inbox's views, counts, filters, search, sort orders, cursors and saved filters."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.core.errors import ValidationFailed
from app.inbox import queries, services
from tests.inbox_support import make_agents, start_case, user


@pytest.fixture
def agents(app, make_user):
    return make_agents(app, make_user)


def ids(page) -> list[int]:
    return [t.id for t in page.tasks]


def test_basket_tasks_show_in_corbeilles_until_claimed_then_in_a_traiter(app, agents):
    with app.app_context():
        task_id = start_case()
        alice = user(agents.alice)
        assert ids(queries.list_tasks(alice, "candidate")) == [task_id]
        assert ids(queries.list_tasks(alice, "mine")) == []
        services.claim(task_id, alice)
        assert ids(queries.list_tasks(alice, "candidate")) == []
        assert ids(queries.list_tasks(alice, "mine")) == [task_id]
        assert ids(queries.list_tasks(user(agents.bob), "candidate")) == []
        assert queries.view_counts(alice)["mine"] == 1
        assert queries.view_counts(user(agents.bob))["candidate"] == 0


def test_baskets_of_several_groups_are_merged_in_due_order_without_duplicates(app, agents):
    with app.app_context():
        late = start_case(group="instruction", due="P9D")
        soon = start_case(group="juridique", due="P1D")
        middle = start_case(group="instruction", due="P4D")
        undated = start_case(group="juridique", due=None)
        denis = user(agents.denis)
        assert ids(queries.list_tasks(denis, "candidate")) == [soon, middle, late, undated]
        assert ids(queries.list_tasks(denis, "candidate", sort="-due")) == [
            undated,
            late,
            middle,
            soon,
        ]
        assert queries.count_view(denis, "candidate") == 4
        assert ids(queries.list_tasks(user(agents.chloe), "candidate")) == [soon, undated]


def test_a_page_names_its_viewer_and_the_assignee_even_when_empty(app, agents):
    with app.app_context():
        task_id = start_case()
        alice, chloe = user(agents.alice), user(agents.chloe)
        services.claim(task_id, alice)
        today = queries.today()
        services.declare_absence(alice, agents.chloe, today, today + timedelta(days=2), alice)
        chloe = user(agents.chloe)
        expected = queries.Viewer.of(chloe)
        assert (expected.ids, expected.groups) == (sorted([alice.id, chloe.id]), ["juridique"])
        for view in ("mine", "candidate", "overdue", "followed"):
            for terms in ([], ["introuvable"]):
                page = queries.list_tasks(chloe, view, filters=queries.Filters(terms=terms))
                assert (page.viewer.ids, page.viewer.groups) == (expected.ids, expected.groups)
        [row] = queries.list_tasks(chloe, "mine").tasks
        assert (row.id, row.assignee.email, row.assignee.name) == (
            task_id,
            agents.alice,
            alice.name,
        )
        assert queries.on_behalf_of(row, expected) == alice.id
        assert row.instance.id == row.instance_id  # relations are read from the task itself


def test_cursor_pages_cover_every_task_once_in_every_sort(app, agents):
    with app.app_context():
        created = [
            start_case(
                group="instruction" if i % 2 else "juridique",
                due=f"P{i % 4 + 1}D",
                priority=(i * 37) % 100,
                chrono=f"2026-{i:05d}",
            )
            for i in range(11)
        ]
        denis = user(agents.denis)
        for sort in ("due", "-due", "priority", "received", "-received"):
            seen, cursor = [], None
            while True:
                page = queries.list_tasks(denis, "candidate", sort=sort, cursor=cursor, limit=3)
                seen += ids(page)
                cursor = page.next_cursor
                if cursor is None:
                    break
            assert sorted(seen) == sorted(created), sort
            assert len(seen) == len(set(seen)), sort
        by_priority = queries.list_tasks(denis, "candidate", sort="priority", limit=50).tasks
        assert [t.priority for t in by_priority] == sorted(
            (t.priority for t in by_priority), reverse=True
        )


def test_a_cursor_from_another_sort_is_refused(app, agents):
    with app.app_context():
        for i in range(3):
            start_case(chrono=f"2026-{i:05d}")
        alice = user(agents.alice)
        cursor = queries.list_tasks(alice, "candidate", limit=1).next_cursor
        with pytest.raises(ValidationFailed) as refused:
            queries.list_tasks(alice, "candidate", sort="priority", cursor=cursor)
        assert refused.value.errors[0]["field"] == "cursor"


def test_search_finds_chrono_subject_sender_and_ignores_accents_and_case(app, agents):
    with app.app_context():
        subsidy = start_case(
            chrono="2026-00042", subject="Subvention école", sender_name="Élise Bâton"
        )
        other = start_case(chrono="2026-00043", subject="Permis de voirie", sender_name="Marc Roy")
        alice = user(agents.alice)

        def found(text):
            return ids(
                queries.list_tasks(alice, "all", filters=queries.parse_filters({"q": text}, alice))
            )

        assert found("00042") == [subsidy]
        assert found("ECOLE") == [subsidy]
        assert found("elise baton") == [subsidy]
        assert found("voirie roy") == [other]
        assert found("100%") == []


def test_filters_by_process_metadata_priority_and_due_range(app, agents):
    with app.app_context():
        urgent = start_case(priority=90, due="P1D", channel="email", service="routes")
        calm = start_case(priority=20, due="P20D", channel="courrier", service="colleges")
        alice = user(agents.alice)

        def found(**params):
            filters = queries.parse_filters(params, alice)
            return ids(queries.list_tasks(alice, "candidate", filters=filters))

        assert found(priority_min=70) == [urgent]
        assert found(priority_max=30) == [calm]
        assert found(channel="courrier") == [calm]
        assert found(service="routes") == [urgent]
        assert found(process_key="inbox_courrier") == [urgent, calm]
        assert found(process_key="autre") == []
        assert found(due_to="aujourd'hui+3") == [urgent]
        assert found(due_from="aujourd'hui+10") == [calm]
        assert found(group="mes groupes") == [urgent, calm]
        assert found(group="juridique") == []


def test_invalid_filters_are_refused_with_french_messages_per_field(app, agents):
    with app.app_context():
        alice = user(agents.alice)
        with pytest.raises(ValidationFailed) as refused:
            queries.parse_filters(
                {"due_to": "demain", "priority_min": "haute", "group": "inconnu"}, alice
            )
        fields = {e["field"]: e["message"] for e in refused.value.errors}
        assert set(fields) == {"due_to", "priority_min", "group"}
        assert "aujourd'hui" in fields["due_to"]
        assert "Groupe inconnu" in fields["group"]


def test_overdue_view_lists_open_tasks_past_their_due_date(app, agents, time_machine):
    with app.app_context():
        late = start_case(due="P1D")
        start_case(due="P10D")
        alice = user(agents.alice)
        assert ids(queries.list_tasks(alice, "overdue")) == []
    time_machine.move_to(queries.today() + timedelta(days=3))
    with app.app_context():
        assert ids(queries.list_tasks(user(agents.alice), "overdue")) == [late]
        assert queries.view_counts(user(agents.alice))["overdue"] == 1


def test_followed_view_holds_cases_i_started_or_follow_and_my_snoozed_tasks(app, agents):
    with app.app_context():
        mine = start_case(initiator=agents.chloe)
        other = start_case()
        chloe = user(agents.chloe)
        assert ids(queries.list_tasks(chloe, "followed")) == [mine]
        alice = user(agents.alice)
        services.follow_case(services.engine.get_task(other).instance_id, alice)
        assert ids(queries.list_tasks(alice, "followed")) == [other]
        services.claim(mine, alice)
        services.snooze(mine, alice, queries.today() + timedelta(days=2))
        assert ids(queries.list_tasks(alice, "mine")) == []
        assert sorted(ids(queries.list_tasks(alice, "followed"))) == sorted([mine, other])


def test_completed_view_lists_what_i_completed_newest_first(app, agents):
    with app.app_context():
        first = start_case(chrono="2026-00001")
        second = start_case(chrono="2026-00002")
        alice = user(agents.alice)
        for task_id in (first, second):
            services.claim(task_id, alice)
            services.complete(
                task_id, {"decision": "accord", "reponse": "Accord de principe."}, alice
            )
        assert ids(queries.list_tasks(alice, "completed")) == [second, first]
        assert queries.view_counts(alice)["completed"] == 2
        assert ids(queries.list_tasks(user(agents.bob), "completed")) == []


def test_admin_sees_every_open_task_in_all_and_agents_only_theirs(app, agents):
    with app.app_context():
        legal = start_case(group="juridique")
        instruction = start_case(group="instruction")
        assert sorted(ids(queries.list_tasks(user(agents.admin), "all"))) == sorted(
            [legal, instruction]
        )
        assert ids(queries.list_tasks(user(agents.alice), "all")) == [instruction]
        assert ids(queries.list_tasks(user(agents.outsider), "all")) == []
        assert "all" in queries.view_counts(user(agents.admin))
        assert "all" not in queries.view_counts(user(agents.alice))


def test_saved_filter_parameters_are_resolved_for_whoever_runs_them(app, agents):
    with app.app_context():
        alice, bob = user(agents.alice), user(agents.bob)
        a_task = start_case(chrono="2026-00100", due="P1D")
        b_task = start_case(chrono="2026-00101", due="P1D")
        services.claim(a_task, alice)
        services.claim(b_task, bob)
        saved = services.save_filter(
            alice,
            "Mes urgences",
            "all",
            {"assignee": "me", "due_to": "aujourd'hui+2", "group": "mes groupes"},
            visibility="group",
            group_name="instruction",
        )
        assert saved.params["assignee"] == "me"  # stored as a parameter, not a value
        for who, expected in ((alice, [a_task]), (bob, [b_task])):
            shared = services.get_filter(saved.id, who)
            filters = queries.parse_filters(shared.params, who)
            assert ids(queries.list_tasks(who, shared.view, filters=filters)) == expected


def test_saved_filters_are_shared_with_me_my_group_or_everyone_only(app, agents):
    with app.app_context():
        alice = user(agents.alice)
        private = services.save_filter(alice, "Privé", "mine", {})
        group = services.save_filter(
            alice, "Instruction", "candidate", {}, visibility="group", group_name="instruction"
        )
        public = services.save_filter(alice, "Pour tous", "overdue", {}, visibility="public")
        names = lambda u: {f.name for f in services.visible_filters(u)}  # noqa: E731
        assert names(alice) == {"Privé", "Instruction", "Pour tous"}
        assert names(user(agents.bob)) == {"Instruction", "Pour tous"}
        assert names(user(agents.chloe)) == {"Pour tous"}
        with pytest.raises(services.PermissionDenied):
            services.get_filter(private.id, user(agents.bob))
        with pytest.raises(services.PermissionDenied):
            services.delete_filter(group.id, user(agents.bob))
        services.delete_filter(public.id, alice)
        assert names(user(agents.chloe)) == set()


def test_saved_filters_refuse_code_and_unknown_parameters(app, agents):
    with app.app_context():
        alice = user(agents.alice)
        with pytest.raises(ValidationFailed) as refused:
            services.save_filter(
                alice, "Piège", "mine", {"where": "1=1; DROP TABLE human_task", "due_to": "demain"}
            )
        fields = {e["field"] for e in refused.value.errors}
        assert "params.where" in fields
        with pytest.raises(ValidationFailed):
            services.save_filter(alice, "Groupe d'autrui", "mine", {}, "group", "juridique")


def test_view_settings_keep_chosen_columns_including_case_variables(app, agents):
    with app.app_context():
        alice = user(agents.alice)
        assert services.view_settings(alice, "mine")[0] == queries.DEFAULT_COLUMNS["mine"]
        services.set_view_settings(alice, "mine", ["title", "amount", "type"], "priority")
        assert services.view_settings(alice, "mine") == (["title", "amount", "type"], "priority")
        with pytest.raises(ValidationFailed):
            services.set_view_settings(alice, "mine", ["title", "__class__"], None)
        task_id = start_case(amount=1250.5, type="subvention")
        task = services.engine.get_task(task_id)
        assert queries.column_value(task, "amount") == 1250.5
        assert queries.column_value(task, "type") == "subvention"
        assert queries.column_value(task, "sender") == "Jeanne Martin"
