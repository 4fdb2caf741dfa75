"""Configuration read from the environment (see the README's configuration table)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_SECRET_KEY = "missive-dev-secret-key-do-not-use-in-production"  # noqa: S105

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class ConfigurationError(RuntimeError):
    """The environment does not allow the application to start safely."""


def database_url(raw: str | None, instance_path: Path) -> str:
    """Return the SQLAlchemy URL, defaulting to the SQLite file under instance/."""
    if not raw:
        return f"sqlite:///{instance_path / 'missive.db'}"
    if raw.startswith("postgres://"):
        raw = "postgresql://" + raw[len("postgres://") :]
    if raw.startswith("postgresql://"):
        # psycopg 3 is the driver we ship; SQLAlchemy's bare scheme means psycopg2.
        raw = "postgresql+psycopg://" + raw[len("postgresql://") :]
    if raw.startswith("sqlite:///") and not raw.startswith("sqlite:////"):
        relative = raw[len("sqlite:///") :]
        if relative and relative != ":memory:":
            return f"sqlite:///{(PROJECT_ROOT / relative).resolve()}"
    return raw


def load(instance_path: Path, overrides: dict | None = None) -> dict:
    """Build the Flask configuration mapping from the environment and overrides."""
    env = os.environ
    mode = (overrides or {}).get("MISSIVE_ENV") or env.get("MISSIVE_ENV", "development")
    storage = env.get("MISSIVE_STORAGE") or str(instance_path / "storage")
    if not os.path.isabs(storage):
        storage = str((PROJECT_ROOT / storage).resolve())
    production = mode == "production"
    config = {
        "MISSIVE_ENV": mode,
        "SECRET_KEY": env.get("SECRET_KEY", DEFAULT_SECRET_KEY),
        "SQLALCHEMY_DATABASE_URI": database_url(env.get("DATABASE_URL"), instance_path),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "MISSIVE_STORAGE": storage,
        "MISSIVE_FORMS_DIRS": env.get("MISSIVE_FORMS_DIRS", ""),
        # Forms that arrive with imported circuit packages (default: MISSIVE_STORAGE/forms).
        "MISSIVE_FORMS_IMPORT_DIR": env.get("MISSIVE_FORMS_IMPORT_DIR") or None,
        "MISSIVE_ENCRYPTION_KEY": env.get("MISSIVE_ENCRYPTION_KEY") or None,
        "MISSIVE_INTAKE_MAX_FILE_MB": int(env.get("MISSIVE_INTAKE_MAX_FILE_MB", "25")),
        "MISSIVE_FORM_RATE_LIMIT": int(env.get("MISSIVE_FORM_RATE_LIMIT", "5")),
        "MISSIVE_FORM_RATE_WINDOW": int(env.get("MISSIVE_FORM_RATE_WINDOW", "3600")),
        "MISSIVE_MAIL_BATCH": int(env.get("MISSIVE_MAIL_BATCH", "25")),
        "MISSIVE_MAIL_MAX_PER_RUN": int(env.get("MISSIVE_MAIL_MAX_PER_RUN", "1000")),
        # Public holidays of a subdivision on top of the national ones ("57" for Moselle).
        "MISSIVE_HOLIDAYS_SUBDIV": env.get("MISSIVE_HOLIDAYS_SUBDIV") or None,
        # Seal acknowledgements with the server seal when one is configured.
        "MISSIVE_ACK_SEAL": env.get("MISSIVE_ACK_SEAL", "1") not in ("0", "false", "no"),
        "MISSIVE_BASE_URL": env.get("MISSIVE_BASE_URL", "http://127.0.0.1:5000"),
        "REDIS_URL": env.get("REDIS_URL") or None,
        "SMTP_HOST": env.get("SMTP_HOST", "localhost"),
        "SMTP_PORT": int(env.get("SMTP_PORT", "25")),
        "SMTP_USERNAME": env.get("SMTP_USERNAME") or None,
        "SMTP_PASSWORD": env.get("SMTP_PASSWORD") or None,
        "SMTP_STARTTLS": env.get("SMTP_STARTTLS", "0") in {"1", "true", "yes"},
        "MAIL_FROM": env.get("MAIL_FROM", "Missive <ne-pas-repondre@missive.local>"),
        "MAX_CONTENT_LENGTH": int(env.get("MISSIVE_MAX_UPLOAD_MB", "50")) * 1024 * 1024,
        "SESSION_COOKIE_NAME": "missive_session",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": production,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SECURE": production,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "PERMANENT_SESSION_LIFETIME": 8 * 3600,
        "WTF_CSRF_TIME_LIMIT": 8 * 3600,
        "BABEL_DEFAULT_LOCALE": "fr",
        "BABEL_DEFAULT_TIMEZONE": "Europe/Paris",
        "LOGIN_MAX_FAILURES_PER_ACCOUNT": int(env.get("MISSIVE_LOGIN_MAX_FAILURES", "5")),
        "LOGIN_MAX_FAILURES_PER_ADDRESS": int(env.get("MISSIVE_LOGIN_MAX_FAILURES_IP", "20")),
        "LOGIN_FAILURE_WINDOW_SECONDS": int(env.get("MISSIVE_LOGIN_WINDOW", "900")),
        # Persons with no exchange left and untouched this long are anonymised (GDPR).
        "CONTACT_RETENTION_MONTHS": int(env.get("MISSIVE_CONTACT_RETENTION_MONTHS", "36")),
        # Parapheur: key that encrypts signing keys and PINs at rest, PAdES level, time
        # stamping authority, trust anchors for validation reports, signer cache lifetime.
        "MISSIVE_KEYSTORE_KEY": env.get("MISSIVE_KEYSTORE_KEY") or None,
        "MISSIVE_PADES_LEVEL": env.get("MISSIVE_PADES_LEVEL", ""),
        "MISSIVE_TSA_URL": env.get("MISSIVE_TSA_URL") or None,
        "MISSIVE_TRUST_ROOTS": env.get("MISSIVE_TRUST_ROOTS", ""),
        "MISSIVE_SIGNER_CACHE_SECONDS": int(env.get("MISSIVE_SIGNER_CACHE_SECONDS", "900")),
    }
    config.update(overrides or {})
    if config["MISSIVE_ENV"] == "production" and config["SECRET_KEY"] == DEFAULT_SECRET_KEY:
        raise ConfigurationError(
            "SECRET_KEY must be set to a long random value when MISSIVE_ENV=production."
        )
    return config
