"""One error path: domain exceptions, problem+json for the API, French pages for people."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException, InternalServerError

from app.core.i18n import N_

log = logging.getLogger(__name__)

PROBLEM_TYPE_BASE = "https://missive.example/problems/"


class MissiveError(Exception):
    """A business rule refused an action; carries the HTTP status it maps to."""

    status = 400
    kind = "bad-request"

    def __init__(self, detail: str, *, errors: list[dict[str, Any]] | None = None, **extra):
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        self.extra = extra


class NotFound(MissiveError):
    status = 404
    kind = "not-found"


class PermissionDenied(MissiveError):
    status = 403
    kind = "forbidden"


class Conflict(MissiveError):
    status = 409
    kind = "conflict"


class ValidationFailed(MissiveError):
    """Input data is invalid; ``errors`` lists ``{"field" or "element_id", "message"}``."""

    status = 422
    kind = "validation"


class PayloadTooLarge(MissiveError):
    status = 413
    kind = "too-large"


class UnsupportedMediaType(MissiveError):
    status = 415
    kind = "unsupported-media-type"


TITLES = {
    400: N_("Requête invalide"),
    401: N_("Authentification requise"),
    403: N_("Accès refusé"),
    404: N_("Introuvable"),
    405: N_("Méthode non autorisée"),
    409: N_("Conflit"),
    413: N_("Contenu trop volumineux"),
    415: N_("Type de contenu non pris en charge"),
    422: N_("Données invalides"),
    429: N_("Trop de requêtes"),
    500: N_("Erreur interne"),
}


def problem(
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    """Build an RFC 9457 problem+json response."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + (kind or str(status)),
        "title": TITLES.get(status, "Erreur"),
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    body.update(extra)
    response = jsonify(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def wants_problem_json() -> bool:
    """True for API calls: they get problem+json instead of an HTML page."""
    return request.path.startswith("/api/")


def _render_page(status: int, detail: str | None = None):
    template = f"errors/{status}.html" if status in (403, 404, 500) else "errors/generic.html"
    try:
        page = render_template(
            template, status=status, title=_(TITLES.get(status, "Erreur")), detail=detail
        )
    except Exception:  # the error page itself failed: answer in plain text, never a loop
        log.exception("error page %s could not be rendered", status)
        page = Response(f"{status} {TITLES.get(status, 'Erreur')}", mimetype="text/plain")
    return page, status


def register_error_handlers(app: Flask) -> None:
    """Route every failure, domain or HTTP, through one rendering path."""

    @app.errorhandler(MissiveError)
    def handle_missive_error(error: MissiveError):
        if wants_problem_json():
            return problem(
                error.status, error.detail, kind=error.kind, errors=error.errors, **error.extra
            )
        return _render_page(error.status, error.detail)

    @app.errorhandler(HTTPException)
    def handle_http_exception(error: HTTPException):
        status = error.code or 500
        if wants_problem_json():
            headers = {}
            if status == 405 and error.valid_methods:
                headers["Allow"] = ", ".join(error.valid_methods)
            detail = {
                404: "Cette ressource n'existe pas.",
                405: "Cette méthode n'est pas permise sur cette ressource.",
                413: "Le contenu envoyé dépasse la taille autorisée.",
            }.get(status, error.description or TITLES.get(status, "Erreur"))
            return problem(status, detail, headers=headers)
        return _render_page(status, None if status in (403, 404, 500) else error.description)

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception):
        if isinstance(error, HTTPException):
            return handle_http_exception(error)
        log.exception("unhandled error on %s %s", request.method, request.path)
        if wants_problem_json():
            return problem(500, "Une erreur interne est survenue ; elle a été journalisée.")
        return _render_page(InternalServerError.code)
