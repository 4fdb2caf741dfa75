"""Sign-in and account forms."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from app.auth.models import ORG_UNIT_KIND_LABELS, ROLE_LABELS


def options(pairs) -> list[SelectChoice]:
    """Turn ``(value, label)`` pairs into select options."""
    return [SelectChoice(value, label) for value, label in pairs]


class LoginForm(FlaskForm):
    email = EmailField(_l("Adresse électronique"), validators=[DataRequired(), Length(max=254)])
    password = PasswordField(_l("Mot de passe"), validators=[DataRequired(), Length(max=1024)])


class UserForm(FlaskForm):
    name = StringField(_l("Nom complet"), validators=[DataRequired(), Length(max=200)])
    email = EmailField(_l("Adresse électronique"), validators=[DataRequired(), Length(max=254)])
    title = StringField(
        _l("Fonction (bloc de signature)"), validators=[Optional(), Length(max=200)]
    )
    role = SelectField(
        _l("Rôle"),
        choices=options((role.value, _l(label)) for role, label in ROLE_LABELS.items()),
    )
    org_unit_id = SelectField(_l("Unité"), coerce=int, validate_choice=False)
    groups = SelectMultipleField(_l("Groupes fonctionnels"), validate_choice=False)
    active = BooleanField(_l("Compte actif"), default=True)
    password = PasswordField(_l("Mot de passe"), validators=[Optional(), Length(max=1024)])


class GroupForm(FlaskForm):
    name = StringField(
        _l("Nom technique (utilisé dans les circuits)"), validators=[DataRequired(), Length(max=80)]
    )
    label = StringField(_l("Libellé"), validators=[DataRequired(), Length(max=200)])
    description = TextAreaField(_l("Description"), validators=[Optional()])
    org_unit_id = SelectField(_l("Unité de rattachement"), coerce=int, validate_choice=False)
    member_ids = SelectMultipleField(_l("Membres"), coerce=int, validate_choice=False)


class OrgUnitForm(FlaskForm):
    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=60)])
    name = StringField(_l("Nom"), validators=[DataRequired(), Length(max=200)])
    kind = SelectField(
        _l("Type"),
        choices=options((kind.value, _l(label)) for kind, label in ORG_UNIT_KIND_LABELS.items()),
    )
    parent_id = SelectField(_l("Unité parente"), coerce=int, validate_choice=False)
    head_id = SelectField(_l("Responsable"), coerce=int, validate_choice=False)
    address_lines = TextAreaField(_l("Adresse postale"), validators=[Optional()])
    postal_code = StringField(_l("Code postal"), validators=[Optional(), Length(max=10)])
    city = StringField(_l("Commune"), validators=[Optional(), Length(max=120)])
    email = EmailField(_l("Adresse électronique"), validators=[Optional()])
    phone = StringField(_l("Téléphone"), validators=[Optional(), Length(max=40)])
