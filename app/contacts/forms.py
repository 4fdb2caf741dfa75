"""HTML forms of the contact base (CSRF through Flask-WTF)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    HiddenField,
    IntegerField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from app.auth.forms import options

KINDS = [("person", _l("Particulier")), ("organisation", _l("Organisation"))]
ORGANISATION_TYPES = [
    ("", _l("— catégorie —")),
    ("company", _l("Entreprise (SIRET)")),
    ("association", _l("Association (RNA)")),
    ("public_body", _l("Organisme public")),
    ("other", _l("Autre")),
]
CIVILITIES = [("", _l("—")), ("M.", "M."), ("Mme", "Mme")]
CHANNELS = [
    ("", _l("— aucun —")),
    ("post", _l("Courrier")),
    ("email", _l("Courriel")),
    ("phone", _l("Téléphone")),
    ("sms", _l("SMS")),
]


def _address(prefix: str) -> dict:
    return {
        f"{prefix}line2": StringField(
            _l("Appartement, étage, « chez »"), validators=[Optional(), Length(max=38)]
        ),
        f"{prefix}line3": StringField(
            _l("Bâtiment, résidence, entrée"), validators=[Optional(), Length(max=38)]
        ),
        f"{prefix}line4": StringField(
            _l("Numéro et voie"), validators=[Optional(), Length(max=38)]
        ),
        f"{prefix}line5": StringField(
            _l("Lieu-dit, boîte postale"), validators=[Optional(), Length(max=38)]
        ),
        f"{prefix}postal_code": StringField(
            _l("Code postal"), validators=[Optional(), Length(max=10)]
        ),
        f"{prefix}city": StringField(_l("Localité"), validators=[Optional(), Length(max=38)]),
        f"{prefix}country": StringField(
            _l("Pays (code ISO, FR par défaut)"), validators=[Optional(), Length(max=2)]
        ),
    }


class ContactForm(FlaskForm):
    kind = RadioField(_l("Type de contact"), choices=options(KINDS), default="person")
    organisation_type = SelectField(
        _l("Catégorie"), choices=options(ORGANISATION_TYPES), validate_choice=False
    )
    civility = SelectField(_l("Civilité"), choices=options(CIVILITIES), validate_choice=False)
    first_name = StringField(_l("Prénom"), validators=[Optional(), Length(max=120)])
    last_name = StringField(_l("Nom"), validators=[Optional(), Length(max=120)])
    birth_name = StringField(_l("Nom de naissance"), validators=[Optional(), Length(max=120)])
    organisation_name = StringField(_l("Raison sociale"), validators=[Optional(), Length(max=300)])
    siret = StringField(_l("SIRET"), validators=[Optional(), Length(max=20)])
    rna = StringField(_l("Numéro RNA"), validators=[Optional(), Length(max=12)])
    public_body_code = StringField(
        _l("Code de l'organisme (SIREN, INSEE)"), validators=[Optional(), Length(max=20)]
    )
    email = StringField(_l("Adresse électronique"), validators=[Optional(), Length(max=254)])
    other_emails = TextAreaField(
        _l("Autres adresses électroniques (une par ligne)"), validators=[Optional()]
    )
    phone = StringField(_l("Téléphone"), validators=[Optional(), Length(max=40)])
    other_phones = TextAreaField(_l("Autres téléphones (un par ligne)"), validators=[Optional()])
    preferred_channel = SelectField(
        _l("Canal préféré"), choices=options(CHANNELS), validate_choice=False
    )
    consent_email = BooleanField(_l("Accepte d'être contacté par courriel"))
    consent_sms = BooleanField(_l("Accepte les SMS"))
    consent_surveys = BooleanField(_l("Accepte les enquêtes de satisfaction"))
    notes = TextAreaField(_l("Observations"), validators=[Optional(), Length(max=4000)])
    version = HiddenField()
    allow_duplicate = BooleanField(_l("Je confirme qu'il ne s'agit pas d'un doublon"))

    def to_data(self) -> dict:
        """The service's input built from the submitted fields."""
        data = {
            name: (getattr(self, name).data or None)
            for name in (
                "kind",
                "organisation_type",
                "civility",
                "first_name",
                "last_name",
                "birth_name",
                "organisation_name",
                "siret",
                "rna",
                "public_body_code",
                "preferred_channel",
                "notes",
            )
        }
        for name in ("consent_email", "consent_sms", "consent_surveys"):
            data[name] = bool(getattr(self, name).data)
        if data["kind"] == "person":
            data.update(
                organisation_type=None,
                organisation_name=None,
                siret=None,
                rna=None,
                public_body_code=None,
            )
        else:
            data.update(civility=None, first_name=None, last_name=None, birth_name=None)
        emails = [self.email.data, *(self.other_emails.data or "").splitlines()]
        data["emails"] = [{"email": e.strip()} for e in emails if e and e.strip()]
        if data["emails"]:
            data["emails"][0]["is_primary"] = True
        phones = [self.phone.data, *(self.other_phones.data or "").splitlines()]
        data["phones"] = [{"number": p.strip()} for p in phones if p and p.strip()]
        if data["phones"]:
            data["phones"][0]["is_primary"] = True
        data["addresses"] = []
        for prefix in ("", "alt_"):
            address = {
                key: (getattr(self, prefix + key).data or "").strip()
                for key in ("line2", "line3", "line4", "line5", "postal_code", "city", "country")
            }
            if any(address[k] for k in ("line4", "line5", "postal_code", "city")):
                address["country"] = (address["country"] or "FR").upper()
                address["is_primary"] = prefix == ""
                data["addresses"].append(address)
        return data

    def fill_from(self, contact) -> None:
        """Put a stored contact in the fields."""
        for name in (
            "organisation_type",
            "civility",
            "first_name",
            "last_name",
            "birth_name",
            "organisation_name",
            "siret",
            "rna",
            "public_body_code",
            "preferred_channel",
            "notes",
            "consent_email",
            "consent_sms",
            "consent_surveys",
        ):
            value = getattr(contact, name)
            getattr(self, name).data = str(value) if hasattr(value, "value") else value
        self.kind.data = str(contact.kind)
        emails = [e.email for e in contact.emails]
        self.email.data = emails[0] if emails else ""
        self.other_emails.data = "\n".join(emails[1:])
        from app.contacts.identifiers import display_phone

        phones = [display_phone(p.number) for p in contact.phones]
        self.phone.data = phones[0] if phones else ""
        self.other_phones.data = "\n".join(phones[1:])
        for prefix, address in zip(("", "alt_"), contact.addresses[:2], strict=False):
            for key in ("line2", "line3", "line4", "line5", "postal_code", "city", "country"):
                getattr(self, prefix + key).data = getattr(address, key)
        self.version.data = str(contact.version)


for _prefix in ("", "alt_"):  # the preferred address and a second one
    for _name, _field in _address(_prefix).items():
        setattr(ContactForm, _name, _field)


# Service error field → form field (the service speaks the API's names).
ERROR_FIELDS = {
    "email": "email",
    "phone": "phone",
    "emails.0.email": "email",
    "phones.0.number": "phone",
    "addresses.0.postal_code": "postal_code",
    "addresses.0.city": "city",
    "addresses.0.line4": "line4",
    "addresses.1.postal_code": "alt_postal_code",
    "addresses.1.city": "alt_city",
}


class LinkForm(FlaskForm):
    organisation_id = IntegerField(_l("Organisation"), validators=[DataRequired()])
    role = StringField(_l("Rôle (gérant, président…)"), validators=[Optional(), Length(max=120)])


class MergeForm(FlaskForm):
    survivor_id = IntegerField(_l("Fiche conservée"), validators=[DataRequired()])


class ConfirmForm(FlaskForm):
    """An action button that only needs the CSRF token."""


class RetentionRuleForm(FlaskForm):
    case_type = StringField(_l("Type de dossier"), validators=[DataRequired(), Length(max=80)])
    label = StringField(_l("Libellé"), validators=[Optional(), Length(max=200)])
    months = IntegerField(
        _l("Durée de conservation (mois)"), validators=[DataRequired(), NumberRange(1, 1200)]
    )
    action = SelectField(
        _l("À l'échéance"),
        choices=options([("anonymise", _l("Anonymiser")), ("delete", _l("Supprimer"))]),
    )
