"""Checks and canonical forms of the identifiers a contact carries.

SIREN/SIRET are checked by python-stdnum (Luhn key, La Poste's SIRET exception included),
phone numbers by phonenumbers (French numbering plan by default), RNA numbers by their
published format (``W`` + 9 digits, or the older ``NNNPNNNNNNN`` prefecture numbers).
Each ``check_*`` returns the canonical value or raises ``ValueError`` with a French message.
"""

from __future__ import annotations

import re

import phonenumbers
from stdnum.exceptions import ValidationError as StdnumError
from stdnum.fr import siren as stdnum_siren
from stdnum.fr import siret as stdnum_siret

from app.contacts.normalise import digits

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
RNA_RE = re.compile(r"^W\d{9}$")
OLD_RNA_RE = re.compile(r"^\d{3}[A-Z0-9]\d{7}$")  # « numéro de préfecture » before 2010
DEFAULT_REGION = "FR"


def check_siret(value: str) -> str:
    """The 14-digit SIRET, or ValueError when its length or Luhn key is wrong."""
    compact = digits(value)
    if len(compact) != 14:
        raise ValueError("Le SIRET doit compter 14 chiffres.")
    try:
        return stdnum_siret.validate(compact)
    except StdnumError as exc:
        raise ValueError("Ce SIRET n'est pas valide (clé de contrôle incorrecte).") from exc


def check_siren(value: str) -> str:
    """The 9-digit SIREN, or ValueError when its length or Luhn key is wrong."""
    compact = digits(value)
    if len(compact) != 9:
        raise ValueError("Le SIREN doit compter 9 chiffres.")
    try:
        return stdnum_siren.validate(compact)
    except StdnumError as exc:
        raise ValueError("Ce SIREN n'est pas valide (clé de contrôle incorrecte).") from exc


def siren_of(siret: str) -> str:
    """The SIREN (company) part of a SIRET (establishment)."""
    return stdnum_siret.to_siren(siret)


def check_rna(value: str) -> str:
    """The association's RNA number in capitals, or ValueError."""
    compact = re.sub(r"\s+", "", value or "").upper()
    if RNA_RE.match(compact) or OLD_RNA_RE.match(compact):
        return compact
    raise ValueError("Le numéro RNA s'écrit W suivi de 9 chiffres (ex. W442001234).")


def check_email(value: str) -> str:
    """The e-mail address trimmed and lower-cased, or ValueError."""
    email = (value or "").strip().lower()
    if len(email) > 254 or not EMAIL_RE.match(email):
        raise ValueError("Adresse électronique invalide.")
    return email


def check_phone(value: str, region: str = DEFAULT_REGION) -> str:
    """The phone number in E.164 (« +33240991000 »), or ValueError."""
    try:
        number = phonenumbers.parse(value or "", region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError("Numéro de téléphone illisible.") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError("Ce numéro de téléphone n'existe pas dans le plan de numérotation.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def display_phone(e164: str | None) -> str:
    """A stored number as French people write it: « 02 40 99 10 00 », « +32 2 …» abroad."""
    if not e164:
        return ""
    try:
        number = phonenumbers.parse(e164, DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return e164
    if number.country_code == 33:
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def is_mobile(e164: str) -> bool:
    """True for a mobile number (SMS possible)."""
    number = phonenumbers.parse(e164, DEFAULT_REGION)
    return phonenumbers.number_type(number) in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    )


def phone_search_key(text: str) -> str | None:
    """E.164 form of a phone number typed in a search box, or None if it is not one."""
    if len(digits(text)) < 9:
        return None
    try:
        return check_phone(text)
    except ValueError:
        return None
