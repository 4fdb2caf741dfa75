"""The API's single source of truth: each route declares its contract once.

``api_route`` registers the Flask view on the API blueprint, validates the request
against the declared JSON Schemas (422 problem+json with field errors) and records
the operation for the OpenAPI 3.1 document served at ``/api/v1/openapi.json``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, request
from flask_login import current_user

from app.core.errors import UnsupportedMediaType, ValidationFailed
from app.core.extensions import login_manager
from app.core.validation import schema_errors

API_PREFIX = "/api/v1"
COMPONENT_PREFIX = "#/components/schemas/"

PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "element_id": {"type": ["string", "null"]},
                    "message": {"type": "string"},
                },
                "required": ["message"],
            },
        },
    },
}


class ApiSpec:
    """Collects operations and named schemas; renders the OpenAPI document."""

    def __init__(self, blueprint: Blueprint, title: str, version: str):
        self.blueprint = blueprint
        self.title = title
        self.version = version
        self.paths: dict[str, dict[str, Any]] = {}
        self.schemas: dict[str, dict] = {"Problem": PROBLEM_SCHEMA}

    def schema(self, name: str, definition: dict) -> dict:
        """Register a named schema component and return a ``$ref`` to it."""
        self.schemas[name] = definition
        return ref(name)

    def validate(self, data: Any, schema: dict, location: str) -> None:
        """Check request data; ``#/components/schemas/…`` references resolve as in the doc."""
        combined = {**schema, "components": {"schemas": self.schemas}}
        errors = schema_errors(data, combined)
        if errors:
            raise ValidationFailed(f"Le contenu ({location}) n'est pas valide.", errors=errors)

    def route(
        self,
        rule: str,
        method: str,
        *,
        summary: str,
        tag: str,
        description: str | None = None,
        body: dict | None = None,
        multipart: dict | None = None,
        query: dict[str, dict] | None = None,
        responses: dict[int, dict | None],
        public: bool = False,
        operation_id: str | None = None,
    ) -> Callable:
        """Declare an API operation (see module docstring)."""

        def decorator(view: Callable) -> Callable:
            op_id = operation_id or view.__name__

            @wraps(view)
            def handler(**path_args):
                if not public and not current_user.is_authenticated:
                    return login_manager.unauthorized()
                kwargs = dict(path_args)
                if query is not None:
                    kwargs["query"] = self._parse_query(query)
                if body is not None:
                    kwargs["body"] = self._parse_json_body(body)
                if multipart is not None:
                    kwargs["body"], kwargs["files"] = self._parse_multipart(multipart)
                return view(**kwargs)

            self.blueprint.add_url_rule(rule, endpoint=op_id, view_func=handler, methods=[method])
            self._document(
                rule,
                method,
                op_id,
                summary,
                description,
                tag,
                body,
                multipart,
                query,
                responses,
                public,
            )
            return handler

        return decorator

    def _parse_query(self, spec: dict[str, dict]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        errors = []
        for name, param in spec.items():
            raw = request.args.get(name)
            schema = param.get("schema", {"type": "string"})
            if raw is None or raw == "":
                if param.get("required"):
                    errors.append({"field": name, "message": "Ce paramètre est obligatoire."})
                values[name] = schema.get("default")
                continue
            try:
                if schema.get("type") == "integer":
                    raw = int(raw)
                elif schema.get("type") == "boolean":
                    raw = raw.lower() in {"1", "true", "oui", "yes"}
            except ValueError:
                errors.append({"field": name, "message": "Valeur attendue : un nombre entier."})
                continue
            for error in schema_errors(raw, schema):
                errors.append({"field": name, "message": error["message"]})
            values[name] = raw
        if errors:
            raise ValidationFailed("Paramètres de requête invalides.", errors=errors)
        return values

    def _parse_json_body(self, schema: dict) -> Any:
        if not request.is_json:
            raise UnsupportedMediaType("Le corps de la requête doit être en application/json.")
        data = request.get_json(silent=True)
        if data is None:
            raise ValidationFailed(
                "Le corps de la requête n'est pas un JSON valide.",
                errors=[{"field": "(corps)", "message": "JSON invalide."}],
            )
        self.validate(data, schema, "JSON")
        return data

    def _parse_multipart(self, spec: dict) -> tuple[Any, dict]:
        if request.mimetype != "multipart/form-data":
            raise UnsupportedMediaType("Le corps de la requête doit être en multipart/form-data.")
        metadata: Any = None
        if "metadata" in spec:
            raw = request.form.get("metadata") or (
                request.files["metadata"].read().decode("utf-8", "replace")
                if "metadata" in request.files
                else None
            )
            if raw is None:
                raise ValidationFailed(
                    "La partie « metadata » est absente.",
                    errors=[{"field": "metadata", "message": "Ce champ est obligatoire."}],
                )
            try:
                metadata = json.loads(raw)
            except ValueError as exc:
                raise ValidationFailed(
                    "La partie « metadata » n'est pas un JSON valide.",
                    errors=[{"field": "metadata", "message": "JSON invalide."}],
                ) from exc
            self.validate(metadata, spec["metadata"], "metadata")
        files = {name: request.files.getlist(name) for name in spec.get("files", {})}
        return metadata, files

    def _document(
        self,
        rule,
        method,
        op_id,
        summary,
        description,
        tag,
        body,
        multipart,
        query,
        responses,
        public,
    ) -> None:
        path = API_PREFIX + re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)
        operation: dict[str, Any] = {"operationId": op_id, "summary": summary, "tags": [tag]}
        if description:
            operation["description"] = description
        parameters = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "integer" if conv == "int" else "string"},
            }
            for conv, name in re.findall(r"<(?:([a-z]+):)?([a-z_]+)>", rule)
        ]
        for name, param in (query or {}).items():
            parameters.append(
                {
                    "name": name,
                    "in": "query",
                    "required": bool(param.get("required")),
                    "description": param.get("description", ""),
                    "schema": param.get("schema", {"type": "string"}),
                }
            )
        if parameters:
            operation["parameters"] = parameters
        if body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": body}},
            }
        if multipart is not None:
            props: dict[str, Any] = {}
            if "metadata" in multipart:
                props["metadata"] = {
                    "type": "string",
                    "description": "JSON: "
                    + json.dumps(multipart["metadata"], ensure_ascii=False)[:2000],
                }
            for name, desc in multipart.get("files", {}).items():
                props[name] = {
                    "type": "array",
                    "description": desc,
                    "items": {"type": "string", "contentMediaType": "application/octet-stream"},
                }
            operation["requestBody"] = {
                "required": True,
                "content": {
                    "multipart/form-data": {"schema": {"type": "object", "properties": props}}
                },
            }
        problem_content = {"application/problem+json": {"schema": ref("Problem")}}
        documented: dict[str, Any] = {}
        for status, schema in responses.items():
            entry: dict[str, Any] = {"description": _STATUS_TEXT.get(status, "Réponse")}
            if schema is not None:
                entry["content"] = {"application/json": {"schema": schema}}
            documented[str(status)] = entry
        errors = [] if public else [401]
        if body is not None or multipart is not None or query:
            errors.append(422)
        if body is not None or multipart is not None:
            errors.append(415)
        for status in errors:
            documented.setdefault(
                str(status), {"description": _STATUS_TEXT[status], "content": problem_content}
            )
        documented.setdefault(
            "default", {"description": "Erreur (problem+json)", "content": problem_content}
        )
        operation["responses"] = documented
        if public:
            operation["security"] = []
        self.paths.setdefault(path, {})[method.lower()] = operation

    def document(self, server_url: str) -> dict:
        """Return the OpenAPI 3.1 document."""
        return {
            "openapi": "3.1.0",
            "info": {
                "title": self.title,
                "version": self.version,
                "description": "API de Missive : courrier, tâches, parapheur. "
                "Erreurs au format application/problem+json (RFC 9457).",
            },
            "servers": [{"url": server_url}],
            "paths": dict(sorted(self.paths.items())),
            "components": {
                "schemas": self.schemas,
                "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            },
            "security": [{"bearerAuth": []}],
        }


_STATUS_TEXT = {
    200: "Succès",
    201: "Créé",
    204: "Sans contenu",
    401: "Authentification requise",
    403: "Accès refusé",
    404: "Introuvable",
    409: "Conflit",
    413: "Trop volumineux",
    415: "Type de contenu non pris en charge",
    422: "Données invalides",
}


def ref(name: str) -> dict:
    """Return a JSON Schema reference to a named component."""
    return {"$ref": COMPONENT_PREFIX + name}


def page_of(item_schema: dict) -> dict:
    """Schema of a cursor-paginated list."""
    return {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": item_schema},
            "next_cursor": {"type": ["string", "null"]},
        },
    }
