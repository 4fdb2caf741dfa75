"""Request hooks shared by every page: sign-in loaders, security headers, template helpers."""

from __future__ import annotations

from flask import Flask, request
from flask_babel import format_date, format_datetime, get_locale
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from app.core.errors import problem, wants_problem_json
from app.core.extensions import login_manager

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'self'"
)


def register_web_hooks(app: Flask) -> None:
    """Install the sign-in loaders, response headers and template helpers."""
    login_manager.login_view = "auth.login"
    login_manager.login_message = _l("Veuillez vous identifier pour accéder à cette page.")
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"

    @login_manager.user_loader
    def load_user(session_id: str):
        from app.auth.services import signed_in_user

        user_id, _, version = session_id.partition(":")
        if not user_id.isdigit():
            return None
        user = signed_in_user(int(user_id))
        if user is None or not user.active or str(user.session_version) != version:
            return None
        return user

    @login_manager.request_loader
    def load_user_from_bearer(req):
        header = req.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        from app.api.services import user_for_token

        return user_for_token(token.strip())

    @login_manager.unauthorized_handler
    def unauthorized():
        if wants_problem_json():
            return problem(
                401,
                "Un jeton d'accès valide est requis (Authorization: Bearer …).",
                headers={"WWW-Authenticate": 'Bearer realm="missive"'},
            )
        from flask import flash, redirect, url_for

        flash(str(login_manager.login_message), login_manager.login_message_category)
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))

    @app.after_request
    def security_headers(response):
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        if response.mimetype == "text/html":
            headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
            if current_user and current_user.is_authenticated:
                headers.setdefault("Cache-Control", "no-store")
        return response

    @app.context_processor
    def layout_helpers():
        from app.core.navigation import main_navigation

        return {"main_navigation": main_navigation, "get_locale": get_locale}

    app.jinja_env.filters["date_fr"] = lambda value, fmt="medium": (
        format_date(value, fmt) if value else ""
    )
    app.jinja_env.filters["datetime_fr"] = lambda value, fmt="medium": (
        format_datetime(value, fmt) if value else ""
    )
