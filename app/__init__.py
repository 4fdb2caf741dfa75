"""Missive: correspondence management and electronic parapheur for French local authorities."""

from __future__ import annotations

import importlib
import importlib.util
import logging
from pathlib import Path

from flask import Flask, has_request_context, request, session
from flask.sessions import SecureCookieSessionInterface
from flask_login import current_user

from app.core import config as config_module
from app.core.db import end_read_only_transaction, include_object
from app.core.extensions import babel, csrf, db, login_manager, migrate
from app.core.i18n import SUPPORTED_LOCALES


class ApiAwareSessionInterface(SecureCookieSessionInterface):
    """No cookie session under /api/: the API authenticates by bearer token only.

    This keeps browser cookies from authenticating API calls, which is why the API
    can be exempt from CSRF.
    """

    def open_session(self, app, request):
        if request.path.startswith("/api/"):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app, session, response):
        if request.path.startswith("/api/"):
            return None
        return super().save_session(app, session, response)


def select_locale() -> str:
    """French unless the person chose English (account preference or ?lang=)."""
    if not has_request_context():  # worker jobs choose with force_locale()
        return "fr"
    chosen = request.args.get("lang") or session.get("lang")
    if chosen in SUPPORTED_LOCALES:
        return chosen
    if current_user and current_user.is_authenticated and current_user.locale:
        return current_user.locale
    return "fr"


def create_app(overrides: dict | None = None) -> Flask:
    """Build the Flask application from the environment (and test overrides)."""
    app = Flask(__name__, instance_path=str(config_module.PROJECT_ROOT / "instance"))
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config.from_mapping(config_module.load(Path(app.instance_path), overrides))
    Path(app.config["MISSIVE_STORAGE"]).mkdir(parents=True, exist_ok=True)
    app.session_interface = ApiAwareSessionInterface()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for chatty in ("spiff", "spiff.task", "spiff.workflow", "spiff.metrics"):
        logging.getLogger(chatty).setLevel(logging.WARNING)

    db.init_app(app)

    @app.teardown_appcontext
    def _end_read_only_transaction(exc: BaseException | None) -> None:
        # Runs before Flask-SQLAlchemy's own teardown (registered earlier), which removes
        # the session and so rolls back whatever is left.
        if exc is None:
            try:
                end_read_only_transaction()
            except Exception:  # the rollback that follows ends it instead
                app.logger.exception("ending a read-only transaction failed")

    migrate.init_app(
        app,
        db,
        directory=str(config_module.PROJECT_ROOT / "migrations"),
        render_as_batch=True,
        compare_type=True,
        include_object=include_object,
    )
    login_manager.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    csrf.init_app(app)

    _register_models()
    _register_blueprints(app)
    _register_commands(app)

    from app.core.errors import register_error_handlers
    from app.core.web import register_web_hooks

    register_error_handlers(app)
    register_web_hooks(app)

    @app.before_request
    def remember_language_choice():
        lang = request.args.get("lang")
        if lang in SUPPORTED_LOCALES and not request.path.startswith("/api/"):
            session["lang"] = lang

    return app


# The domain packages, in dependency order. Each may hold (all optional):
# models.py, permissions.py, handlers.py (service-task handlers), api.py (routes on the
# API blueprint), views.py (a blueprint named ``bp``), cli.py (a ``commands`` list of click
# commands), tasks.py (worker jobs) and demo.py (a ``load()`` used by ``missive demo load``).
DOMAINS = (
    "auth",
    "api",
    "documents",
    "contacts",
    "engine",
    "correspondence",
    "deadlines",
    "mail",
    "inbox",
    "parapheur",
    "admin",
    "stats",
)
# ``hooks``: what a domain plugs into the extension points of others (a contact's timeline,
# the retention job, the documents of an inbox task…), loaded once every domain is there.
_PARTS = ("models", "permissions", "handlers", "api", "tasks", "hooks")


def domain_module(domain: str, part: str):
    """Import ``app.<domain>.<part>`` if that module exists, else return None."""
    name = f"app.{domain}.{part}"
    if importlib.util.find_spec(name) is None:
        return None
    return importlib.import_module(name)


def _register_models() -> None:
    # Models first (SQLAlchemy's metadata and Alembic see every table), then the rest.
    import app.core.audit  # noqa: F401

    for part in _PARTS:
        for domain in DOMAINS:
            domain_module(domain, part)


def _register_blueprints(app: Flask) -> None:
    from app.api import bp as api_bp

    csrf.exempt(api_bp)
    for domain in DOMAINS:
        views = domain_module(domain, "views")
        if views is not None:
            app.register_blueprint(views.bp)
    app.register_blueprint(api_bp)


def _register_commands(app: Flask) -> None:
    from app.cli import register_commands

    register_commands(app)
    for domain in DOMAINS:
        cli = domain_module(domain, "cli")
        for command in getattr(cli, "commands", []):
            app.cli.add_command(command)
