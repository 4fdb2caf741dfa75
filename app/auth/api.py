"""API: who am I."""

from __future__ import annotations

from flask import jsonify
from flask_login import current_user

from app.api import api_route, spec

USER_SCHEMA = spec.schema(
    "User",
    {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "email": {"type": "string"},
            "name": {"type": "string"},
            "title": {"type": ["string", "null"]},
            "role": {"type": "string"},
            "org_unit": {"type": ["string", "null"]},
            "groups": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["id", "email", "name", "role", "groups"],
    },
)


def user_json(user) -> dict:
    """Public representation of an account."""
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "title": user.title,
        "role": str(user.role),
        "org_unit": user.org_unit.code if user.org_unit else None,
        "groups": user.group_names,
    }


@api_route(
    "/me",
    "GET",
    summary="Le compte du porteur du jeton",
    tag="Comptes",
    responses={200: USER_SCHEMA},
)
def me():
    return jsonify(user_json(current_user))
