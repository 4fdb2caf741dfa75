"""The parapheur in the inbox: a signature delegate finds the delegator's signatures in the
baskets (through the engine's candidate rules, as SQL), claims one there and signs it with
the delegation's mention; the task page shows the folder's documents."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.auth.services import find_user_by_email
from app.documents.services import content
from app.engine import services as engine
from app.engine.models import TaskStatus
from app.inbox import queries
from app.inbox import services as inbox
from app.parapheur import services
from app.parapheur.services import Upload
from tests.conftest import login
from tests.engine_helpers import deploy_fixtures
from tests.parapheur_support import PKCS12_PASSWORD, make_pdf, pdfsig, stamp_texts


def user(email):
    return find_user_by_email(email)


@pytest.fixture
def cabinet(signing_app, make_user, signing_infrastructure):
    people = {
        "drafter": make_user(email="redacteur@example.test"),
        "president": make_user(email="president@example.test", name="Paule Présidente"),
        "dgs": make_user(
            email="dgs@example.test",
            name="Damien Directeur",
            title="Directeur général des services",
        ),
        "stranger": make_user(email="autre@example.test", name="Aline Autre"),
    }
    with signing_app.app_context():
        for key, name in (("president", "Paule Présidente"), ("dgs", "Damien Directeur")):
            services.import_pkcs12(
                signing_infrastructure.identity(name).pkcs12(), PKCS12_PASSWORD, email=people[key]
            )
    return people


def delegate(cabinet, **scope):
    president = user(cabinet["president"])
    return services.create_delegation(
        delegator=president, delegate=user(cabinet["dgs"]), actor=president, **scope
    )


def folder_for_the_president(cabinet, title="Convention avec le club de voile"):
    return services.create_folder(
        title=title,
        type="convention",
        actor=user(cabinet["drafter"]),
        documents=[Upload("convention.pdf", make_pdf(placeholder=True))],
        circuit=[{"step": "signature", "assignee": cabinet["president"]}],
    )


def signature_of(folder):
    [task] = [t for t in services.open_tasks(folder) if t.form_key == "signature"]
    return task


def basket(email, **filters):
    return [
        t.id
        for t in queries.list_tasks(
            user(email), "candidate", filters=queries.Filters(**filters)
        ).tasks
    ]


def test_a_delegate_finds_the_delegators_signatures_in_the_baskets_and_counts(signing_app, cabinet):
    with signing_app.app_context():
        delegate(cabinet)
        task = signature_of(folder_for_the_president(cabinet))
        assert basket(cabinet["dgs"]) == [task.id]
        assert basket(cabinet["dgs"], terms=["voile"]) == [task.id]  # the indexed path
        assert queries.list_tasks(user(cabinet["dgs"]), "all").tasks[0].id == task.id
        assert queries.view_counts(user(cabinet["dgs"]))["candidate"] == 1
        assert queries.may_claim(task, queries.Viewer.of(user(cabinet["dgs"])))
        # nobody else sees it, and the president still does
        assert basket(cabinet["stranger"]) == []
        assert queries.view_counts(user(cabinet["stranger"]))["candidate"] == 0
        assert basket(cabinet["president"]) == [task.id]


def test_only_signatures_under_a_current_delegation_are_offered(signing_app, cabinet):
    with signing_app.app_context():
        deploy_fixtures("multi_process.bpmn")
        note = engine.start_instance(
            "note_interne", {"destinataire": cabinet["president"]}, user(cabinet["drafter"])
        )
        delegation = delegate(cabinet, valid_until=services.today() + timedelta(days=30))
        task = signature_of(folder_for_the_president(cabinet))
        # a task offered to the president by name that is not a signature is not delegated
        assert basket(cabinet["dgs"]) == [task.id]
        assert note.id not in [
            t.instance_id for t in queries.list_tasks(user(cabinet["dgs"]), "all").tasks
        ]
        services.revoke_delegation(delegation.id, user(cabinet["president"]))
        assert basket(cabinet["dgs"]) == []
        delegate(cabinet, valid_from=services.today() + timedelta(days=1))
        assert basket(cabinet["dgs"]) == []  # not yet in force
        delegate(
            cabinet,
            valid_from=services.today() - timedelta(days=10),
            valid_until=services.today() - timedelta(days=1),
        )
        assert basket(cabinet["dgs"]) == []  # over


def test_the_delegate_claims_from_the_inbox_and_signs_with_the_mention(
    signing_app, cabinet, signing_infrastructure
):
    with signing_app.app_context():
        delegate(cabinet, document_types=["convention"])
        folder = folder_for_the_president(cabinet)
        task = signature_of(folder)
        dgs = user(cabinet["dgs"])
        inbox.claim(task.id, dgs)
        assert [t.id for t in queries.list_tasks(dgs, "mine").tasks] == [task.id]
        assert basket(cabinet["president"]) == []  # taken: out of the baskets
        # the task page lists the folder's document
        assert [d.filename for d in inbox.task_documents(task, dgs)] == ["convention.pdf"]
        inbox.complete(task.id, {"decision": "sign"}, dgs)
        folder = services.get_folder(folder.id)
        assert signature_of_done(folder) == (cabinet["dgs"], cabinet["president"])
        data = content(folder.current_documents("main")[0].current)
    assert "Pour le Président et par délégation," in stamp_texts(data)["Signature1"]
    [check] = pdfsig(data, signing_infrastructure.nssdb, signing_infrastructure.workdir)
    assert check.valid and check.trusted and check.whole_document


def signature_of_done(folder):
    step = services.folder_steps(folder)[-1]
    return step["by"], step["on_behalf_of"]


def test_the_delegate_sees_the_signature_on_the_inbox_page(signing_app, cabinet, client):
    with signing_app.app_context():
        delegate(cabinet)
        task = signature_of(folder_for_the_president(cabinet))
        task_id = task.id
        assert task.status == TaskStatus.OPEN
    login(client, cabinet["dgs"])
    page = client.get("/?vue=candidate").get_data(as_text=True)
    assert f"/taches/{task_id}" in page
    assert "Convention avec le club de voile" in page
