"""Demo data: an organisation shaped like a Département, loaded idempotently."""

from __future__ import annotations

from sqlalchemy import func, select

from app.auth.models import Group, OrgUnit, OrgUnitKind, User
from app.core.extensions import db
from app.demo import load_demo
from app.demo.organisation import DEMO_PASSWORD
from tests.conftest import login


def test_demo_loads_twice_without_duplicates(app):
    with app.app_context():
        first = load_demo(activity=False)
        second = load_demo(activity=False)
        users = db.session.scalar(select(func.count()).select_from(User))
        delegations = db.session.scalar(
            select(func.count()).select_from(OrgUnit).where(OrgUnit.kind == OrgUnitKind.DELEGATION)
        )
    assert first["users"] >= 40
    assert {"org_units", "groups", "users"} <= set(second)
    assert set(second.values()) == {0}  # every domain's demo loader is idempotent
    assert users == first["users"]
    assert delegations == 6


def test_demo_has_the_departements_shape(app):
    with app.app_context():
        load_demo(activity=False)
        units = {u.code: u for u in db.session.execute(select(OrgUnit)).scalars()}
        assert units["dgs"].parent.code == "departement"
        assert units["svc-recrutement"].parent.code == "dir-rh"
        assert all(units[c].head is not None for c in ("dgs", "dir-solidarites", "del-nantes"))
        names = {g.name for g in db.session.execute(select(Group)).scalars()}
        assert {"courrier-central", "delegation-nantes", "dgs"} <= names
        roles = {str(u.role) for u in db.session.execute(select(User)).scalars()}
        assert roles == {"agent", "analyst", "admin"}


def test_demo_agent_can_sign_in_and_see_their_name(app, client):
    with app.app_context():
        load_demo(activity=False)
    response = login(client, "claire.martin@departement.test", DEMO_PASSWORD)
    assert response.status_code == 302
    assert "Claire Martin" in client.get("/").get_data(as_text=True)


def test_demo_ships_the_type_list_and_deploys_the_intake_circuits(app):
    from app.correspondence.models import CaseType
    from app.engine.services import list_definitions

    with app.app_context():
        summary = load_demo(activity=False)
        assert summary["case_types"] >= 5 and summary["process_versions"] >= 2
        assert summary["decision_versions"] >= 2
        keys = {d.key for d in list_definitions()}
        assert {"courrier_entrant", "candidature"} <= keys
        codes = {t.code for t in db.session.execute(select(CaseType)).scalars()}
        assert {"demande_information", "reclamation", "candidature"} <= codes
