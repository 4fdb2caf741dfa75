"""Issuing, checking and revoking API bearer tokens."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from app.api.models import ApiToken
from app.auth.models import User
from app.core import audit
from app.core.db import utcnow
from app.core.errors import NotFound
from app.core.extensions import db
from app.core.security import new_token, token_digest

_LAST_USED_PRECISION = timedelta(minutes=5)


def create_token(
    user: User, *, name: str = "jeton", actor: User | None = None
) -> tuple[ApiToken, str]:
    """Issue a token for ``user``; the clear value is returned once and never stored."""
    clear = new_token()
    token = ApiToken(user=user, name=name, token_hash=token_digest(clear), prefix=clear[:10])
    db.session.add(token)
    db.session.flush()
    audit.record(
        "api_token.create",
        actor=actor or user,
        object_type="api_token",
        object_id=token.id,
        data={"user": user.email, "name": name},
    )
    db.session.commit()
    return token, clear


def revoke_token(token_id: int, *, actor: User | None = None) -> ApiToken:
    """Revoke a token: it stops working at once."""
    token = db.session.get(ApiToken, token_id)
    if token is None:
        raise NotFound("Jeton introuvable.")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        audit.record(
            "api_token.revoke",
            actor=actor,
            object_type="api_token",
            object_id=token.id,
            data={"user": token.user.email},
        )
        db.session.commit()
    return token


def tokens_of(user: User) -> list[ApiToken]:
    """Return a user's tokens, newest first."""
    return list(
        db.session.execute(
            select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())
        ).scalars()
    )


def user_for_token(clear: str) -> User | None:
    """Return the active user a valid, unrevoked token belongs to, or None."""
    token = (
        db.session.execute(
            select(ApiToken)
            .where(ApiToken.token_hash == token_digest(clear))
            .options(joinedload(ApiToken.user).joinedload(User.groups))  # one query for all
        )
        .unique()
        .scalar_one_or_none()
    )
    if token is None or token.revoked_at is not None or not token.user.active:
        return None
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at > _LAST_USED_PRECISION:
        token.last_used_at = now
        db.session.commit()
    return token.user
