"""Mailbox passwords: encrypted at rest with the key from the environment, rotatable."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from app.mail import crypto


def test_password_is_encrypted_and_key_rotation_keeps_old_secrets_readable(app):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with app.app_context():
        app.config["MISSIVE_ENCRYPTION_KEY"] = old
        token = crypto.encrypt("mot-de-passe")
        assert "mot-de-passe" not in token
        app.config["MISSIVE_ENCRYPTION_KEY"] = f"{new},{old}"
        assert crypto.decrypt(token) == "mot-de-passe"
        app.config["MISSIVE_ENCRYPTION_KEY"] = new
        with pytest.raises(crypto.SecretUnavailable):
            crypto.decrypt(token)
        app.config["MISSIVE_ENCRYPTION_KEY"] = None


def test_production_refuses_to_store_secrets_without_a_configured_key(app):
    with app.app_context():
        app.config.update(MISSIVE_ENV="production", MISSIVE_ENCRYPTION_KEY=None)
        try:
            with pytest.raises(crypto.SecretUnavailable):
                crypto.encrypt("x")
        finally:
            app.config["MISSIVE_ENV"] = "testing"
