"""Identifiers and postal addresses are checked before anything is stored."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from app.contacts import communes, identifiers
from app.contacts.normalise import fold, name_similarity
from app.contacts.services import split_address_lines
from app.core.extensions import db


def test_siret_with_a_valid_luhn_key_is_accepted_and_compacted():
    assert identifiers.check_siret("732 829 320 00074") == "73282932000074"
    assert identifiers.siren_of("73282932000074") == "732829320"


@pytest.mark.parametrize("value", ["73282932000075", "7328293200007", "ABCDEFGHIJKLMN"])
def test_siret_with_a_wrong_key_or_length_is_refused(value):
    with pytest.raises(ValueError, match="SIRET"):
        identifiers.check_siret(value)


def test_la_poste_establishments_follow_their_own_siret_rule():
    # La Poste (SIREN 356000000) numbers its establishments outside the Luhn rule.
    assert identifiers.check_siret("35600000000048") == "35600000000048"


def test_siren_key_is_checked():
    assert identifiers.check_siren("732829320") == "732829320"
    with pytest.raises(ValueError):
        identifiers.check_siren("732829321")


@pytest.mark.parametrize("value", ["W442001234", "w 442 001 234", "443P0001234"])
def test_rna_numbers_new_and_old_are_accepted(value):
    assert identifiers.check_rna(value) == value.replace(" ", "").upper()


@pytest.mark.parametrize("value", ["W44200123", "X442001234", "442001234"])
def test_malformed_rna_numbers_are_refused(value):
    with pytest.raises(ValueError, match="RNA"):
        identifiers.check_rna(value)


def test_french_phone_numbers_are_stored_in_e164_and_shown_the_french_way():
    assert identifiers.check_phone("02 40 99 10 00") == "+33240991000"
    assert identifiers.check_phone("+33 6 12 34 56 78") == "+33612345678"
    assert identifiers.display_phone("+33240991000") == "02 40 99 10 00"
    assert identifiers.display_phone("+3225551234").startswith("+32 ")


@pytest.mark.parametrize("value", ["12", "01 23", "not a number"])
def test_impossible_phone_numbers_are_refused(value):
    with pytest.raises(ValueError):
        identifiers.check_phone(value)


def test_postal_code_must_serve_the_commune():
    assert communes.check_commune("44000", "Nantes").code == "44109"
    assert communes.check_commune("44800", "ST HERBLAIN").name == "Saint-Herblain"
    with pytest.raises(ValueError, match="Nantes"):
        communes.check_commune("44000", "Rezé")
    with pytest.raises(ValueError, match="n'existe pas"):
        communes.check_commune("99999", "Nulle-Part")


def test_cedex_lines_are_checked_against_the_departement():
    assert communes.check_commune("44041", "NANTES CEDEX 1").code == "44109"
    with pytest.raises(ValueError, match="département 44"):
        communes.check_commune("44041", "LYON CEDEX 1")


def test_paris_arrondissements_accept_the_city_name():
    assert communes.check_commune("75011", "PARIS").department == "75"


def test_the_commune_list_covers_loire_atlantique():
    names = {c.name for c in communes.communes_of_department("44")}
    assert {"Nantes", "Saint-Nazaire", "Rezé", "Clisson"} <= names
    assert len(names) > 200


def test_fold_removes_case_accents_ligatures_and_punctuation():
    assert fold("L'Haÿ-les-Roses") == "l hay les roses"
    assert fold("  CŒUR  de Bœuf ") == "coeur de boeuf"
    assert fold("Ærø Straße") == "aero strasse"


def test_names_with_typos_or_swapped_words_are_similar():
    assert name_similarity("Dupont Jean", "DUPOND Jean") > 0.85
    assert name_similarity("Jean Dupont", "Dupont Jean") == 1.0
    assert name_similarity("Dupont Jean", "Martin Paul") < 0.5


def test_free_address_lines_land_on_afnor_lines():
    placed = split_address_lines("Chez Mme Durand\nRésidence Les Pins\n3 rue de la Paix\nBP 12")
    assert placed == {
        "line2": "Chez Mme Durand",
        "line3": "Résidence Les Pins",
        "line4": "3 rue de la Paix",
        "line5": "BP 12",
    }
    assert split_address_lines("La Métairie")["line4"] == "La Métairie"


def test_sql_missive_fold_agrees_with_python_fold(app):
    """On PostgreSQL the SQL function is built on unaccent: both must fold identically."""
    samples = [
        "Hélène Lefèbvre",
        "CŒUR",
        "L'Haÿ-les-Roses",
        "Ærø",
        "François-Xavier Gaël",
        "Ñandú",
        "Saint-Étienne-de-Montluc",
        "  Ça  va ? ",
    ]
    with app.app_context():
        for sample in samples:
            in_sql = db.session.execute(text("SELECT missive_fold(:v)"), {"v": sample}).scalar()
            assert in_sql == fold(sample), sample
