"""API: contact search, creation, reading and correction; sender matching; merges; GDPR."""

from __future__ import annotations

import re

from flask import jsonify, request
from flask_login import current_user

from app.api import api_route, page_of, spec
from app.contacts import search, services
from app.contacts.identifiers import display_phone
from app.contacts.models import Contact
from app.contacts.timeline import timeline_for
from app.core.errors import ValidationFailed
from app.core.permissions import require

_TEXT = {"type": ["string", "null"]}
_BOOL = {"type": "boolean"}
ADDRESS_SCHEMA = spec.schema(
    "ContactAddress",
    {
        "type": "object",
        "description": "Adresse postale selon la norme AFNOR NF Z10-011 (ligne 1 : le nom "
        "du contact ; lignes 2 à 5 ; ligne 6 : code postal et localité ; ligne 7 : pays).",
        "properties": {
            "label": _TEXT,
            "is_primary": _BOOL,
            "line2": {
                **_TEXT,
                "description": "Complément d'identification du destinataire "
                "(appartement, étage, « chez »).",
            },
            "line3": {
                **_TEXT,
                "description": "Complément du point géographique (bâtiment, résidence, entrée).",
            },
            "line4": {**_TEXT, "description": "Numéro et libellé de la voie."},
            "line5": {**_TEXT, "description": "Lieu-dit, boîte postale, commune déléguée."},
            "address_lines": {
                **_TEXT,
                "description": "Lignes 2 à 5 en texte libre (une par "
                "ligne), à la place de line2…line5.",
            },
            "postal_code": {"type": "string"},
            "city": {"type": "string"},
            "country": {"type": "string", "description": "Code pays ISO 3166-1 (FR par défaut)"},
            "commune_code": {**_TEXT, "readOnly": True, "description": "Code INSEE vérifié."},
        },
        "additionalProperties": False,
    },
)
EMAIL_ITEM = {
    "type": "object",
    "properties": {"email": {"type": "string"}, "label": _TEXT, "is_primary": _BOOL},
    "required": ["email"],
    "additionalProperties": False,
}
PHONE_ITEM = {
    "type": "object",
    "properties": {
        "number": {"type": "string"},
        "label": _TEXT,
        "is_primary": _BOOL,
        "display": {"type": "string", "readOnly": True},
    },
    "required": ["number"],
    "additionalProperties": False,
}
WRITABLE = {
    "kind": {"type": "string", "enum": ["person", "organisation"]},
    "organisation_type": {
        "type": ["string", "null"],
        "enum": ["company", "association", "public_body", "other", None],
    },
    "civility": {**_TEXT, "description": "« M. » ou « Mme » (ou vide)."},
    "first_name": _TEXT,
    "last_name": _TEXT,
    "birth_name": _TEXT,
    "organisation_name": _TEXT,
    "siret": {**_TEXT, "description": "14 chiffres, clé de Luhn vérifiée."},
    "siren": _TEXT,
    "rna": {**_TEXT, "description": "W suivi de 9 chiffres."},
    "public_body_code": _TEXT,
    "email": {**_TEXT, "description": "Adresse électronique préférée."},
    "phone": {**_TEXT, "description": "Téléphone préféré (tout format ; rendu en E.164)."},
    "address_lines": {**_TEXT, "description": "Lignes 2 à 5 de l'adresse préférée."},
    "postal_code": {**_TEXT, "description": "Vérifié avec la commune (liste officielle)."},
    "city": _TEXT,
    "country": _TEXT,
    "emails": {"type": "array", "items": EMAIL_ITEM, "maxItems": 20},
    "phones": {"type": "array", "items": PHONE_ITEM, "maxItems": 20},
    "addresses": {"type": "array", "items": ADDRESS_SCHEMA, "maxItems": 20},
    "preferred_channel": {
        "type": ["string", "null"],
        "enum": ["post", "email", "phone", "sms", None],
    },
    "consent_email": _BOOL,
    "consent_sms": _BOOL,
    "consent_surveys": _BOOL,
    "notes": _TEXT,
}
READ_ONLY = {
    "id": {"type": "integer"},
    "display_name": {"type": "string"},
    "status": {"type": "string", "enum": ["active", "merged", "anonymised"]},
    "merged_into_id": {"type": ["integer", "null"]},
    "commune_code": _TEXT,
    "links": {"type": "array", "items": {"type": "object"}},
    "created_at": {"type": "string", "format": "date-time"},
    "updated_at": {"type": "string", "format": "date-time"},
    "consent_updated_at": {"type": ["string", "null"]},
}
CONTACT_SCHEMA = spec.schema(
    "Contact",
    {
        "type": "object",
        "properties": {
            **WRITABLE,
            **{k: {**v, "readOnly": True} for k, v in READ_ONLY.items()},
            "version": {"type": "integer", "readOnly": True},
        },
        "required": ["id", "kind", "display_name", "status", "version"],
    },
)
DUPLICATE_SCHEMA = spec.schema(
    "ContactDuplicate",
    {
        "type": "object",
        "description": "Doublon probable (duplicate) d'un contact.",
        "properties": {
            "id": {"type": "integer"},
            "display_name": {"type": "string"},
            "score": {"type": "number"},
            "reasons": {"type": "array", "items": {"type": "string"}},
            "reason_labels": {"type": "array", "items": {"type": "string"}},
            "postal_code": _TEXT,
            "city": _TEXT,
            "email": _TEXT,
        },
        "required": ["id", "display_name", "score", "reasons"],
    },
)
CREATE_SCHEMA = spec.schema(
    "ContactCreate",
    {
        "type": "object",
        "properties": {
            **WRITABLE,
            "allow_duplicate": {
                "type": "boolean",
                "description": "Créer même si un doublon évident existe.",
            },
        },
        "additionalProperties": False,
    },
)
CREATED_SCHEMA = spec.schema(
    "ContactCreated",
    {
        "allOf": [
            CONTACT_SCHEMA,
            {
                "type": "object",
                "properties": {"duplicates": {"type": "array", "items": DUPLICATE_SCHEMA}},
                "required": ["duplicates"],
            },
        ]
    },
)
PATCH_SCHEMA = spec.schema(
    "ContactPatch",
    {
        "type": "object",
        "properties": {
            **WRITABLE,
            "version": {"type": "integer", "description": "Version lue (sinon en-tête If-Match)."},
        },
        "additionalProperties": False,
        "minProperties": 1,
    },
)
MATCH_SCHEMA = spec.schema(
    "SenderMatchRequest",
    {
        "type": "object",
        "properties": {
            "email": {"type": ["string", "null"], "description": "Adresse ou en-tête From."},
            "data": {"type": "object", "description": "Champs de contact d'un formulaire."},
        },
        "additionalProperties": False,
    },
)
MATCH_RESULT_SCHEMA = spec.schema(
    "SenderMatch",
    {
        "type": "object",
        "properties": {
            "contact": {"anyOf": [CONTACT_SCHEMA, {"type": "null"}]},
            "confidence": {"type": "number"},
            "reasons": {"type": "array", "items": {"type": "string"}},
            "proposal": {"type": "object"},
        },
        "required": ["contact", "confidence", "reasons", "proposal"],
    },
)
TIMELINE_SCHEMA = spec.schema(
    "TimelineEntry",
    {
        "type": "object",
        "properties": {
            "at": {"type": "string", "format": "date-time"},
            "kind": {"type": "string"},
            "title": {"type": "string"},
            "detail": _TEXT,
            "url": _TEXT,
            "channel": _TEXT,
            "service": _TEXT,
            "source": {"type": "string"},
        },
        "required": ["at", "kind", "title"],
    },
)
MERGE_REQUEST_SCHEMA = spec.schema(
    "ContactMergeRequest",
    {
        "type": "object",
        "properties": {
            "merged_id": {"type": "integer", "description": "La fiche absorbée."},
            "choices": {
                "type": "object",
                "additionalProperties": {"type": "string", "enum": ["survivor", "merged"]},
            },
        },
        "required": ["merged_id"],
        "additionalProperties": False,
    },
)
MERGE_SCHEMA = spec.schema(
    "ContactMerge",
    {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "survivor_id": {"type": "integer"},
            "merged_id": {"type": "integer"},
            "merged_at": {"type": "string"},
            "merged_by": {"type": ["string", "null"]},
            "undone_at": {"type": ["string", "null"]},
            "moved": {"type": "object"},
        },
        "required": ["id", "survivor_id", "merged_id"],
    },
)

DUPLICATE_NOTE = (
    "Création d'un doublon évident (même SIRET ou RNA, même nom avec la même adresse "
    "électronique…) : réponse **409** `application/problem+json` de type "
    "`…/problems/duplicate` (« Doublon probable »), avec la liste `duplicates` des fiches "
    "existantes (id, nom, score, raisons). Renvoyer la demande avec `allow_duplicate: true` "
    "pour créer quand même. Sinon **201** : la fiche créée, avec `duplicates` (doublons "
    "possibles, moins certains, placés dans la file de revue ; liste vide s'il n'y en a pas)."
)


def contact_json(contact: Contact) -> dict:
    """Public representation of a contact (the contract's fields and the rest)."""
    body = {
        "id": contact.id,
        "kind": str(contact.kind),
        "display_name": contact.display_name,
        "status": str(contact.status),
        "merged_into_id": contact.merged_into_id,
        "version": contact.version,
        "created_at": contact.created_at.isoformat(),
        "updated_at": contact.updated_at.isoformat(),
        "consent_updated_at": contact.consent_updated_at.isoformat()
        if contact.consent_updated_at
        else None,
        "commune_code": contact.commune_code,
    }
    for name in (
        "organisation_type",
        "civility",
        "first_name",
        "last_name",
        "birth_name",
        "organisation_name",
        "siret",
        "siren",
        "rna",
        "public_body_code",
        "email",
        "phone",
        "address_lines",
        "postal_code",
        "city",
        "preferred_channel",
        "consent_email",
        "consent_sms",
        "consent_surveys",
        "notes",
    ):
        value = getattr(contact, name)
        body[name] = str(value) if hasattr(value, "value") else value
    body["emails"] = [
        {"email": e.email, "label": e.label, "is_primary": e.is_primary} for e in contact.emails
    ]
    body["phones"] = [
        {
            "number": p.number,
            "label": p.label,
            "is_primary": p.is_primary,
            "display": display_phone(p.number),
        }
        for p in contact.phones
    ]
    body["addresses"] = [
        {
            "label": a.label,
            "is_primary": a.is_primary,
            "line2": a.line2,
            "line3": a.line3,
            "line4": a.line4,
            "line5": a.line5,
            "postal_code": a.postal_code,
            "city": a.city,
            "country": a.country,
            "commune_code": a.commune_code,
        }
        for a in contact.addresses
    ]
    body["links"] = [
        {
            "id": link.id,
            "person_id": link.person_id,
            "organisation_id": link.organisation_id,
            "role": link.role,
        }
        for link in services.links_of(contact)
    ]
    return body


def _with_etag(response, contact: Contact):
    response.headers["ETag"] = f'W/"{contact.version}"'
    return response


def _expected_version(body: dict) -> int | None:
    if "version" in body:
        return body["version"]
    header = request.headers.get("If-Match", "").strip()
    if not header or header == "*":
        return None
    match = re.fullmatch(r'(?:W/)?"?(\d+)"?', header)
    if not match:
        raise ValidationFailed(
            "En-tête If-Match invalide.", errors=[{"field": "If-Match", "message": "ETag attendu."}]
        )
    return int(match.group(1))


@api_route(
    "/contacts",
    "GET",
    summary="Rechercher des contacts",
    tag="Contacts",
    description="Recherche tolérante aux accents, à la casse et aux fautes de frappe, par "
    "nom, adresse électronique, téléphone, SIRET/SIREN, RNA, code postal ou commune. Sans "
    "`q`, tous les contacts actifs par ordre alphabétique.",
    query={
        "q": {"description": "Texte recherché", "schema": {"type": "string", "maxLength": 200}},
        "kind": {"schema": {"type": "string", "enum": ["person", "organisation"]}},
        "limit": {"schema": {"type": "integer", "minimum": 1, "maximum": 200}},
        "cursor": {"schema": {"type": "string"}},
    },
    responses={200: page_of(CONTACT_SCHEMA)},
)
def list_contacts(query):
    page = search.search_contacts(
        query["q"], kind=query["kind"], limit=query["limit"] or 20, cursor=query["cursor"]
    )
    return jsonify(
        {"items": [contact_json(c) for c in page.items], "next_cursor": page.next_cursor}
    )


@api_route(
    "/contacts",
    "POST",
    summary="Créer un contact",
    tag="Contacts",
    description=DUPLICATE_NOTE,
    body=CREATE_SCHEMA,
    responses={201: CREATED_SCHEMA, 409: None},
)
def create_contact(body):
    allow = bool(body.pop("allow_duplicate", False))
    contact, found = services.create_contact(body, current_user, allow_duplicate=allow)
    payload = contact_json(contact)
    payload["duplicates"] = [services.duplicate_json(c, s, r) for c, s, r in found]
    response = jsonify(payload)
    response.status_code = 201
    response.headers["Location"] = f"/api/v1/contacts/{contact.id}"
    return _with_etag(response, contact)


@api_route(
    "/contacts/<int:contact_id>",
    "GET",
    summary="Lire un contact",
    tag="Contacts",
    description="Une fiche fusionnée répond avec `status: merged` et `merged_into_id`. "
    "L'en-tête ETag porte la version à renvoyer dans If-Match lors d'une modification.",
    responses={200: CONTACT_SCHEMA, 404: None},
)
def get_contact(contact_id):
    contact = services.get_contact(contact_id, current_user)
    return _with_etag(jsonify(contact_json(contact)), contact)


@api_route(
    "/contacts/<int:contact_id>",
    "PATCH",
    summary="Modifier un contact",
    tag="Contacts",
    body=PATCH_SCHEMA,
    description="Modification partielle. Concurrence optimiste : envoyer la version lue "
    "(`version` ou en-tête `If-Match`) ; si quelqu'un a modifié la fiche entre-temps, "
    "réponse 409. Données invalides : 422 avec les erreurs par champ.",
    responses={200: CONTACT_SCHEMA, 404: None, 409: None},
)
def patch_contact(contact_id, body):
    contact = services.get_contact(contact_id, current_user)
    expected = _expected_version(body)
    body.pop("version", None)
    contact = services.update_contact(contact, body, current_user, expected_version=expected)
    return _with_etag(jsonify(contact_json(contact)), contact)


@api_route(
    "/contacts/match",
    "POST",
    summary="Identifier l'expéditeur d'un envoi",
    tag="Contacts",
    body=MATCH_SCHEMA,
    responses={200: MATCH_RESULT_SCHEMA},
    description="Pour l'enregistrement du courrier : l'adresse électronique (ou l'en-tête "
    "From) ou les champs d'un formulaire retrouvent le contact ; sinon `contact` est nul "
    "et `proposal` contient la fiche à créer, pré-remplie.",
)
def match_contact(body):
    require(current_user, "read", "contact")
    found = services.match_sender(email=body.get("email"), data=body.get("data"))
    return jsonify(
        {
            "contact": contact_json(found.contact) if found.contact else None,
            "confidence": found.confidence,
            "reasons": found.reasons,
            "proposal": found.proposal,
        }
    )


@api_route(
    "/contacts/<int:contact_id>/timeline",
    "GET",
    summary="Historique des échanges",
    tag="Contacts",
    responses={
        200: {
            "type": "object",
            "properties": {"items": {"type": "array", "items": TIMELINE_SCHEMA}},
        },
        404: None,
    },
    description="Dossiers, documents et réponses de tous les canaux, filtrés selon ce que "
    "l'appelant peut voir, et événements de la fiche.",
)
def contact_timeline(contact_id):
    contact = services.get_contact(contact_id, current_user)
    return jsonify(
        {
            "items": [
                {
                    "at": e.at.isoformat(),
                    "kind": e.kind,
                    "title": e.title,
                    "detail": e.detail,
                    "url": e.url,
                    "channel": e.channel,
                    "service": e.service,
                    "source": e.source,
                }
                for e in timeline_for(contact, current_user)
            ]
        }
    )


@api_route(
    "/contacts/<int:contact_id>/export",
    "GET",
    summary="Export RGPD (JSON)",
    tag="Contacts",
    responses={200: {"type": "object"}, 403: None, 404: None},
    description="Toutes les données d'une personne (droit d'accès). Réservé au groupe "
    "`dpo` et aux administrateurs.",
)
def export_contact(contact_id):
    contact = services.get_contact(contact_id, current_user)
    return jsonify(services.export_contact_data(contact, current_user))


@api_route(
    "/contacts/<int:contact_id>/anonymise",
    "POST",
    summary="Anonymiser (RGPD)",
    tag="Contacts",
    responses={200: CONTACT_SCHEMA, 403: None, 404: None, 409: None},
    description="Efface l'identité et les coordonnées ; les statistiques (type, "
    "commune, nombre d'échanges) demeurent. Réservé au groupe `dpo`.",
)
def anonymise_contact(contact_id):
    contact = services.get_contact(contact_id, current_user)
    return jsonify(contact_json(services.anonymise_contact(contact, current_user)))


def merge_json(merge) -> dict:
    """Public representation of a merge."""
    return {
        "id": merge.id,
        "survivor_id": merge.survivor_id,
        "merged_id": merge.merged_id,
        "merged_at": merge.merged_at.isoformat(),
        "merged_by": merge.merged_by.email if merge.merged_by else None,
        "undone_at": merge.undone_at.isoformat() if merge.undone_at else None,
        "moved": {k: len(v) for k, v in (merge.snapshot or {}).get("moved", {}).items()},
    }


@api_route(
    "/contacts/<int:contact_id>/merge",
    "POST",
    summary="Fusionner un doublon",
    tag="Contacts",
    body=MERGE_REQUEST_SCHEMA,
    responses={200: MERGE_SCHEMA, 403: None, 404: None, 409: None},
    description="La fiche `merged_id` est absorbée par celle-ci : tous ses échanges "
    "sont rattachés, rien n'est supprimé, l'opération est tracée et réversible. "
    "Réservé au groupe `referents-contacts`.",
)
def merge_contact(contact_id, body):
    survivor = services.get_contact(contact_id, current_user)
    merged = services.get_contact(body["merged_id"], current_user)
    merge = services.merge_contacts(survivor, merged, current_user, choices=body.get("choices"))
    return jsonify(merge_json(merge))


@api_route(
    "/contact-merges/<int:merge_id>/undo",
    "POST",
    summary="Annuler une fusion",
    tag="Contacts",
    responses={200: MERGE_SCHEMA, 403: None, 404: None, 409: None},
)
def undo_merge(merge_id):
    merge = services.get_merge(merge_id, current_user)
    services.undo_merge(merge, current_user)
    return jsonify(merge_json(merge))


@api_route(
    "/contacts/duplicates",
    "GET",
    summary="File des doublons à examiner",
    tag="Contacts",
    responses={
        200: {
            "type": "object",
            "properties": {"items": {"type": "array", "items": {"type": "object"}}},
        },
        403: None,
    },
)
def duplicates_queue():
    pairs = services.open_duplicates(current_user)
    return jsonify(
        {
            "items": [
                {
                    "id": p.id,
                    "score": p.score,
                    "reasons": p.reasons,
                    "first": {"id": p.first.id, "display_name": p.first.display_name},
                    "second": {"id": p.second.id, "display_name": p.second.display_name},
                }
                for p in pairs
            ]
        }
    )
