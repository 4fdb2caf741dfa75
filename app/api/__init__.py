"""The JSON API under /api/v1: bearer tokens, problem+json errors, OpenAPI document."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from app.api.openapi import API_PREFIX, ApiSpec, page_of, ref

bp = Blueprint("api", __name__, url_prefix=API_PREFIX)
spec = ApiSpec(bp, title="Missive API", version="1")
api_route = spec.route

__all__ = ["api_route", "bp", "page_of", "ref", "spec"]


@bp.get("/openapi.json")
def openapi_document():
    """The OpenAPI 3.1 document, generated from the declared routes."""
    base = current_app.config["MISSIVE_BASE_URL"].rstrip("/")
    return jsonify(spec.document(base + API_PREFIX))
