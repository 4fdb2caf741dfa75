"""Delegations of signature: the delegate signs for the delegator, within types, a ceiling
and dates, and the stamp says so."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.auth.services import find_user_by_email
from app.core.errors import PermissionDenied, ValidationFailed
from app.core.extensions import db
from app.documents.services import content
from app.engine import services as engine
from app.parapheur import services
from app.parapheur.models import FolderStatus
from app.parapheur.services import Upload
from tests.parapheur_support import PKCS12_PASSWORD, make_pdf, pdfsig, stamp_texts


def _user(email):
    return find_user_by_email(email)


@pytest.fixture
def cabinet(signing_app, make_user, signing_infrastructure):
    """The President signs; the DGS holds a certificate and may receive a delegation."""
    people = {
        "drafter": make_user(email="redacteur@example.test"),
        "president": make_user(
            email="president@example.test",
            name="Paule Présidente",
            title="Présidente du Conseil départemental",
        ),
        "dgs": make_user(
            email="dgs@example.test",
            name="Damien Directeur",
            title="Directeur général des services",
        ),
        "stranger": make_user(email="autre@example.test", name="Aline Autre"),
    }
    with signing_app.app_context():
        for key, name in (
            ("president", "Paule Présidente"),
            ("dgs", "Damien Directeur"),
            ("stranger", "Aline Autre"),
        ):
            services.import_pkcs12(
                signing_infrastructure.identity(name).pkcs12(), PKCS12_PASSWORD, email=people[key]
            )
    return people


def _delegate(cabinet, **scope):
    president = _user(cabinet["president"])
    return services.create_delegation(
        delegator=president, delegate=_user(cabinet["dgs"]), actor=president, **scope
    )


def _folder(cabinet, type="facture", amount=None):
    return services.create_folder(
        title="Mandatement",
        type=type,
        amount=amount,
        actor=_user(cabinet["drafter"]),
        documents=[Upload("piece.pdf", make_pdf(placeholder=True))],
        circuit=[{"step": "signature", "assignee": cabinet["president"]}],
    )


def _signature_task(folder):
    [task] = [t for t in services.open_tasks(folder) if t.form_key == "signature"]
    return task


def test_a_delegate_signs_for_the_delegator_with_the_mention_on_the_stamp(
    signing_app, cabinet, signing_infrastructure
):
    with signing_app.app_context():
        delegation = _delegate(cabinet, document_types=["facture"], amount_ceiling=50_000)
        folder = _folder(cabinet, amount=12_500)
        engine.complete_task(
            _signature_task(folder).id, {"decision": "sign"}, _user(cabinet["dgs"])
        )
        engine.run_due_jobs()
        folder = services.get_folder(folder.id)
        step = services.folder_steps(folder)[-1]
        data = content(folder.current_documents("main")[0].current)
        version = services.document_versions(folder)[0]["versions"][-1]
        assert folder.status == FolderStatus.COMPLETED
        assert (step["by"], step["on_behalf_of"]) == (cabinet["dgs"], cabinet["president"])
        assert version["on_behalf_of"] == cabinet["president"]
        assert delegation.mention == "Pour le Président et par délégation"

    stamp_text = stamp_texts(data)["Signature1"]
    assert "Pour le Président et par délégation," in stamp_text
    assert "Directeur général des services" in stamp_text and "Damien Directeur" in stamp_text
    [signature] = pdfsig(data, signing_infrastructure.nssdb, signing_infrastructure.workdir)
    assert signature.value("Signer Certificate Common Name") == "Damien Directeur"
    assert signature.valid and signature.trusted and signature.whole_document


def test_a_delegation_does_not_cover_other_document_types(signing_app, cabinet):
    with signing_app.app_context():
        _delegate(cabinet, document_types=["facture"])
        folder = _folder(cabinet, type="arrete")
        task = _signature_task(folder)
        with pytest.raises(
            PermissionDenied, match="ne couvre pas les documents de type « Arrêté »"
        ):
            engine.complete_task(task.id, {"decision": "sign"}, _user(cabinet["dgs"]))
        db.session.refresh(task)
        assert task.status == "open" and task.assignee_id is None


def test_a_delegation_stops_at_its_amount_ceiling(signing_app, cabinet):
    with signing_app.app_context():
        _delegate(cabinet, amount_ceiling=20_000)
        refused = _folder(cabinet, amount=20_000.01)
        with pytest.raises(PermissionDenied, match="dépasse le plafond"):
            engine.complete_task(
                _signature_task(refused).id, {"decision": "sign"}, _user(cabinet["dgs"])
            )
        accepted = _folder(cabinet, amount=20_000)
        engine.complete_task(
            _signature_task(accepted).id, {"decision": "sign"}, _user(cabinet["dgs"])
        )
        assert services.folder_steps(services.get_folder(accepted.id))[-1]["decision"] == "sign"


@pytest.mark.parametrize(
    ("starts", "ends", "message"),
    [
        (1, None, "ne prend effet que le"),
        (-10, -1, "a pris fin le"),
    ],
)
def test_a_delegation_applies_only_between_its_dates(signing_app, cabinet, starts, ends, message):
    with signing_app.app_context():
        today = services.today()
        _delegate(
            cabinet,
            valid_from=today + timedelta(days=starts),
            valid_until=today + timedelta(days=ends) if ends is not None else None,
        )
        folder = _folder(cabinet)
        with pytest.raises(PermissionDenied, match=message):
            engine.complete_task(
                _signature_task(folder).id, {"decision": "sign"}, _user(cabinet["dgs"])
            )


def test_a_revoked_delegation_no_longer_lets_the_delegate_act(signing_app, cabinet):
    with signing_app.app_context():
        delegation = _delegate(cabinet)
        folder = _folder(cabinet)
        task = _signature_task(folder)
        assert services.is_signature_delegate(_user(cabinet["dgs"]), task)
        services.revoke_delegation(delegation.id, _user(cabinet["president"]))
        with pytest.raises(PermissionDenied):
            engine.complete_task(task.id, {"decision": "sign"}, _user(cabinet["dgs"]))


def test_without_a_delegation_nobody_else_may_sign(signing_app, cabinet):
    with signing_app.app_context():
        folder = _folder(cabinet)
        with pytest.raises(PermissionDenied):
            engine.complete_task(
                _signature_task(folder).id, {"decision": "sign"}, _user(cabinet["stranger"])
            )


def test_the_delegate_finds_the_folder_among_those_to_handle(signing_app, cabinet):
    with signing_app.app_context():
        _delegate(cabinet, document_types=["facture"])
        folder = _folder(cabinet)
        todo, _cursor = services.list_folders(_user(cabinet["dgs"]), scope="todo")
        assert [f.id for f in todo] == [folder.id]
        assert services.get_folder(folder.id, _user(cabinet["dgs"])).id == folder.id
        assert services.list_folders(_user(cabinet["stranger"]), scope="todo")[0] == []


def test_only_the_delegator_or_an_admin_delegates_and_dates_must_be_ordered(signing_app, cabinet):
    with signing_app.app_context():
        president, dgs = _user(cabinet["president"]), _user(cabinet["dgs"])
        with pytest.raises(PermissionDenied):
            services.create_delegation(delegator=president, delegate=dgs, actor=dgs)
        with pytest.raises(ValidationFailed) as invalid:
            services.create_delegation(
                delegator=president,
                delegate=dgs,
                actor=president,
                valid_from=services.today(),
                valid_until=services.today() - timedelta(days=1),
                document_types=["inconnu"],
            )
        assert {e["field"] for e in invalid.value.errors} == {"valid_until", "document_types"}
