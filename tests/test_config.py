"""Configuration from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.config import DEFAULT_SECRET_KEY, ConfigurationError, database_url, load


def test_production_refuses_the_default_secret_key(monkeypatch, tmp_path):
    monkeypatch.setenv("MISSIVE_ENV", "production")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(ConfigurationError):
        load(tmp_path)


def test_production_with_a_secret_key_has_secure_cookies(monkeypatch, tmp_path):
    monkeypatch.setenv("MISSIVE_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "x" * 40)
    config = load(tmp_path)
    assert config["SESSION_COOKIE_SECURE"] is True
    assert config["SECRET_KEY"] != DEFAULT_SECRET_KEY


def test_create_app_refuses_to_start_in_production_without_secret(monkeypatch):
    from app import create_app

    monkeypatch.setenv("MISSIVE_ENV", "production")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(ConfigurationError):
        create_app()


def test_default_database_is_sqlite_under_instance():
    url = database_url(None, Path("/srv/missive/instance"))
    assert url == "sqlite:////srv/missive/instance/missive.db"


def test_postgresql_urls_use_psycopg3():
    assert database_url("postgresql://u@h/db", Path(".")) == "postgresql+psycopg://u@h/db"
    assert database_url("postgres://u@h/db", Path(".")) == "postgresql+psycopg://u@h/db"
