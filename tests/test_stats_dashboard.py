"""The service-quality dashboard against a small dataset whose figures were computed by
hand (March 2026 has no public holiday; Easter Monday is 6 April)."""

from __future__ import annotations

import io
from datetime import date

import pytest
import time_machine
from openpyxl import load_workbook
from sqlalchemy import select

from app.auth.models import OrgUnit
from app.auth.services import find_user_by_email
from app.core.extensions import db
from app.correspondence import services as intake
from app.correspondence.models import Channel
from app.deadlines import services as deadlines
from app.stats import services as stats
from tests.conftest import login
from tests.deadlines_helpers import citizen, paris, register, rule, setup_office
from tests.smtp_sink import SmtpSink

NOW = paris(2026, 4, 2, 12)
MARCH = stats.Period(date(2026, 3, 1), date(2026, 3, 31))


@pytest.fixture
def dataset(app, make_user):
    """Seven cases, A to G (see each comment for its hand-computed dates)."""
    people = setup_office(app, make_user, deploy=False)
    people["nantes_head"] = make_user(email="chef.nantes@example.test")
    people["analyst"] = make_user(role="analyst", email="analyste@example.test")
    people["nobody"] = make_user(email="personne@example.test")
    with SmtpSink() as sink, app.app_context():
        app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=sink.port)
        units = {u.code: u for u in db.session.execute(select(OrgUnit)).scalars()}
        nantes = units["u-delegation-nantes"]
        nantes.kind = "delegation"
        nantes.name = "Délégation Nantes"
        nantes.head = find_user_by_email(people["nantes_head"])
        units["u-colleges"].parent = nantes
        db.session.commit()
        rule("facture", None, acknowledge=False)
        courrier = find_user_by_email(people["courrier"])

        def at(moment):
            return time_machine.travel(moment, tick=False)

        with at(paris(2026, 2, 20)):
            # F: routes, letter of 20 Feb, due 13 March, still open -> backlog and overdue
            register(paris(2026, 2, 20), service_group="routes", sender=citizen())
        with at(paris(2026, 3, 2)):
            # A: routes, letter of Mon 2 Mar, due 23 Mar, ack due 16 Mar
            a = register(paris(2026, 3, 2), service_group="routes", sender=citizen())
        with at(paris(2026, 3, 3)):
            # B: routes, e-mail of Tue 3 Mar, due 10 Mar, ack due 10 Mar
            b = register(
                paris(2026, 3, 3),
                channel=Channel.EMAIL,
                service_group="routes",
                sender=citizen(email="b@example.org"),
            )
        with at(paris(2026, 3, 4)):
            # D: colleges, web form of Wed 4 Mar, due 11 Mar, never acknowledged, open
            register(
                paris(2026, 3, 4),
                channel=Channel.WEB,
                service_group="colleges",
                sender=citizen(email="d@example.org"),
            )
            deadlines.issue_acknowledgement(b, None)  # B acknowledged by e-mail on 4 Mar
            db.session.commit()
            deadlines.send_pending_notices()
        with at(paris(2026, 3, 5)):
            deadlines.issue_acknowledgement(a, None)  # A printed on 5 Mar: in time
            db.session.commit()
            deadlines.print_acknowledgements(courrier)
        with at(paris(2026, 3, 9)):
            # C: routes, letter of Mon 9 Mar, due 30 Mar, ack due 23 Mar
            c = register(paris(2026, 3, 9), service_group="routes", sender=citizen())
        with at(paris(2026, 3, 13)):
            intake.close_case(b, None)  # B: 8 working days, after its due date
            db.session.commit()
        with at(paris(2026, 3, 16)):
            # G: routes, invoice of 16 Mar (no acknowledgement), closed the next day
            g = register(paris(2026, 3, 16), type_code="facture", service_group="routes")
        with at(paris(2026, 3, 17)):
            intake.close_case(g, None)  # G: 1 working day
            db.session.commit()
        with at(paris(2026, 3, 20)):
            intake.close_case(a, None)  # A: 14 working days, in time
            db.session.commit()
        with at(paris(2026, 3, 25)):
            deadlines.issue_acknowledgement(c, None)  # C printed on 25 Mar: late
            db.session.commit()
            deadlines.print_acknowledgements(courrier)
        with at(paris(2026, 3, 27)):
            intake.close_case(c, None)  # C: 14 working days, in time
            db.session.commit()
        with at(paris(2026, 3, 30)):
            # E: colleges, letter of Mon 30 Mar, due 21 Apr (Easter Monday skipped)
            register(paris(2026, 3, 30), service_group="colleges", sender=citizen())
    return people


def figures(row):
    return (
        row.volume,
        (row.ack_in_time, row.ack_measured),
        (row.answered_in_time, row.answers_measured),
        row.median_delay,
        row.p90_delay,
        (row.backlog, row.overdue),
    )


def test_figures_per_service_match_the_hand_computed_answer(app, dataset):
    with app.app_context(), time_machine.travel(NOW, tick=False):
        report = stats.report(find_user_by_email("admin@example.test"), MARCH, "service")
        rows = {r.label: r for r in report.rows}
        # routes: A, B, C, G received; acks A, B in time, C late; answers A, C, G in time,
        # B late; delays 14, 8, 14, 1; F (February) still open and overdue
        assert figures(rows["Service routes"]) == (4, (2, 3), (3, 4), 11, 14, (1, 1))
        assert rows["Service routes"].ack_rate == 0.6667
        assert rows["Service routes"].answer_rate == 0.75
        # colleges: D (ack and answer overdue) and E (nothing due yet), both open
        assert figures(rows["Service colleges"]) == (2, (0, 1), (0, 1), None, None, (2, 1))
        assert figures(report.total) == (6, (2, 4), (3, 5), 11, 14, (3, 2))
        assert (report.total.ack_rate, report.total.answer_rate) == (0.5, 0.6)
        assert [r.label for r in report.rows] == ["Service routes", "Service colleges"]


def test_figures_per_channel_and_per_delegation(app, dataset):
    with app.app_context(), time_machine.travel(NOW, tick=False):
        admin = find_user_by_email("admin@example.test")
        channels = {r.key: r for r in stats.report(admin, MARCH, "channel").rows}
        assert figures(channels["paper"]) == (4, (1, 2), (3, 3), 14, 14, (2, 1))
        assert figures(channels["email"]) == (1, (1, 1), (0, 1), 8, 8, (0, 0))
        assert figures(channels["web"]) == (1, (0, 1), (0, 1), None, None, (1, 1))
        delegations = {r.label: r for r in stats.report(admin, MARCH, "delegation").rows}
        assert set(delegations) == {"Siège", "Délégation Nantes"}
        assert figures(delegations["Délégation Nantes"]) == (2, (0, 1), (0, 1), None, None, (2, 1))
        types = {r.key: r for r in stats.report(admin, MARCH, "type").rows}
        assert (types["facture"].volume, types["demande_information"].volume) == (1, 5)


def test_filters_narrow_the_cases_counted(app, dataset):
    with app.app_context(), time_machine.travel(NOW, tick=False):
        admin = find_user_by_email("admin@example.test")
        only_email = stats.report(admin, MARCH, "service", channel="email")
        assert figures(only_email.total) == (1, (1, 1), (0, 1), 8, 8, (0, 0))
        first_week = stats.report(admin, stats.Period(date(2026, 3, 1), date(2026, 3, 6)))
        assert first_week.total.volume == 3  # A, B, D


def test_agents_see_their_service_heads_their_units_analysts_everything(app, dataset):
    with app.app_context(), time_machine.travel(NOW, tick=False):
        agent = stats.report(find_user_by_email(dataset["routes"]), MARCH)
        assert [r.label for r in agent.rows] == ["Service routes"]
        assert agent.total.volume == 4
        head = stats.report(find_user_by_email(dataset["nantes_head"]), MARCH)
        assert [r.label for r in head.rows] == ["Service colleges"]
        analyst = stats.report(find_user_by_email(dataset["analyst"]), MARCH)
        assert analyst.total.volume == 6
        nobody = stats.report(find_user_by_email(dataset["nobody"]), MARCH)
        assert (nobody.rows, nobody.total.volume) == ([], 0)


def test_dashboard_page_refuses_another_service_and_lists_overdue_cases(app, client, dataset):
    with app.app_context():
        colleges = db.session.execute(
            select(OrgUnit.id).where(OrgUnit.code == "u-colleges")
        ).scalar_one()
    with time_machine.travel(NOW, tick=False):
        login(client, dataset["routes"])
        page = client.get("/stats?from=2026-03-01&to=2026-03-31")
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        assert "Service routes" in html and "Service colleges" not in html
        assert "<svg" in html and "67 %" in html and "75 %" in html
        assert "2026-A-000001" in html  # F, overdue
        denied = client.get(f"/stats?from=2026-03-01&to=2026-03-31&service={colleges}")
        assert denied.status_code == 403
        bad = client.get("/stats?from=2026-03-31&to=2026-03-01")
        assert bad.status_code == 422


def test_csv_export_has_one_line_per_service_and_the_total(app, client, dataset):
    with time_machine.travel(NOW, tick=False):
        login(client, "admin@example.test")
        response = client.get("/stats/export.csv?from=2026-03-01&to=2026-03-31")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment;")
    lines = response.get_data(as_text=True).lstrip("\ufeff").splitlines()
    assert lines[0].startswith("Service;Reçus;Accusés dus;Accusés dans les délais;")
    assert lines[1] == "Service routes;4;3;2;0,6667;4;3;0,75;4;11;14;1;1"
    assert lines[2] == "Service colleges;2;1;0;0;1;0;0;0;;;2;1"
    assert lines[3] == "Total;6;4;2;0,5;5;3;0,6;4;11;14;3;2"


def test_xlsx_export_holds_the_indicators_and_the_overdue_list(app, client, dataset):
    with time_machine.travel(NOW, tick=False):
        login(client, "admin@example.test")
        response = client.get("/stats/export.xlsx?from=2026-03-01&to=2026-03-31&group_by=channel")
    book = load_workbook(io.BytesIO(response.data))
    sheet = book["Indicateurs"]
    rows = [[c.value for c in r] for r in sheet.iter_rows(min_row=2)]
    assert rows[0][:3] == ["Canal", "Reçus", "Accusés dus"]
    by_channel = {r[0]: r for r in rows[1:]}
    assert by_channel["Courrier papier"][1:] == [4, 2, 1, 0.5, 3, 3, 1.0, 3, 14, 14, 2, 1]
    assert by_channel["Total"][1] == 6
    late = [[c.value for c in r] for r in book["En retard"].iter_rows(min_row=2)]
    assert [r[0] for r in late] == ["2026-A-000004", "2026-A-000001"]  # D (11 Mar), F (13 Mar)


def test_open_data_gives_monthly_figures_per_service_without_personal_data(app, client, dataset):
    with time_machine.travel(NOW, tick=False):
        response = client.get("/donnees-ouvertes/indicateurs.csv")  # public, no sign-in
        as_json = client.get("/donnees-ouvertes/indicateurs.json").get_json()
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    lines = text.splitlines()
    assert lines[0].startswith("periode,code_service,service,volume,")
    assert "2026-02,u-routes,Service routes,1,1,0,0.0,1,0,0.0,," in lines
    assert "2026-03,u-routes,Service routes,4,3,2,0.6667,4,3,0.75,11.0,14" in lines
    assert "2026-03,u-colleges,Service colleges,2,1,0,0.0,1,0,0.0,," in lines
    assert "Dupont" not in text and "@" not in text and "2026-A-" not in text
    assert len(as_json["donnees"]) == 3
