"""The one permission check: per-object-type policies and role gates."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask_login import current_user

from app.core.errors import PermissionDenied
from app.core.extensions import login_manager

Policy = Callable[[Any, str, Any], bool]
_policies: dict[str, Policy] = {}


def policy(object_type: str) -> Callable[[Policy], Policy]:
    """Register the function that decides what a user may do on one kind of object."""

    def register(func: Policy) -> Policy:
        _policies[object_type] = func
        return func

    return register


def can(user: Any, action: str, object_type: str, obj: Any = None) -> bool:
    """True when ``user`` may perform ``action`` on ``obj`` (admins may do everything)."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.active:
        return False
    if user.is_admin:
        return True
    check = _policies.get(object_type)
    return bool(check and check(user, action, obj))


def require(user: Any, action: str, object_type: str, obj: Any = None) -> None:
    """Raise PermissionDenied unless ``user`` may perform ``action`` on ``obj``."""
    if not can(user, action, object_type, obj):
        raise PermissionDenied("Vous n'avez pas accès à cette ressource ou à cette action.")


def role_required(role: str) -> Callable:
    """View decorator: the signed-in user must hold ``role`` or a higher one."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if not current_user.has_role(role):
                raise PermissionDenied("Cette page est réservée au rôle requis.")
            return view(*args, **kwargs)

        return wrapped

    return decorator
