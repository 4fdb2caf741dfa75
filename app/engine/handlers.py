"""Service-task handlers: Python functions that BPMN service tasks call by name.

A domain registers its handlers with ``@service_handler("send_acknowledgement")``; a
diagram names one with ``camunda:type="external" camunda:topic="send_acknowledgement"``.
Unknown names are refused at deploy time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class HandlerContext:
    """What a handler receives: the instance, the task and its data (ids, never bytes)."""

    instance_id: int | None
    business_key: str | None
    task_id: str
    task_name: str
    data: dict[str, Any]
    properties: dict[str, str]


Handler = Callable[[HandlerContext], dict[str, Any] | None]
_handlers: dict[str, Handler] = {}

# Called when a person completes a task with that form, before the workflow moves on, in the
# same transaction: ``hook(task, data, actor)`` may refuse (raise a MissiveError: the task
# stays open, nothing is saved) or return variables to add to the task data (ids only).
CompletionHook = Callable[[Any, dict[str, Any], Any], dict[str, Any] | None]
_completion_hooks: dict[str, list[CompletionHook]] = {}


def service_handler(name: str) -> Callable[[Handler], Handler]:
    """Register a handler; the dict it returns is merged into the task data."""

    def register(func: Handler) -> Handler:
        _handlers[name] = func
        return func

    return register


def handler_exists(name: str) -> bool:
    """True when a handler is registered under that name."""
    return name in _handlers


def get_handler(name: str) -> Handler:
    """Return the handler registered under that name (KeyError if unknown)."""
    return _handlers[name]


def completion_hook(form_key: str) -> Callable[[CompletionHook], CompletionHook]:
    """Register a hook run when a task with this form is completed (e.g. ``signature``)."""

    def register(func: CompletionHook) -> CompletionHook:
        hooks = _completion_hooks.setdefault(form_key, [])
        if func not in hooks:
            hooks.append(func)
        return func

    return register


def completion_hooks(form_key: str | None) -> list[CompletionHook]:
    """The hooks registered for a form key (none for tasks without a form)."""
    return list(_completion_hooks.get(form_key or "", []))


# Called in the transaction that completes an instance (its end event was reached), so a
# domain can close what the instance carried: ``listener(instance)``.
InstanceListener = Callable[[Any], None]
_completion_listeners: list[InstanceListener] = []


def on_instance_completed(func: InstanceListener) -> InstanceListener:
    """Register a listener run when an instance completes."""
    if func not in _completion_listeners:
        _completion_listeners.append(func)
    return func


def instance_completed_listeners() -> list[InstanceListener]:
    """The listeners run when an instance completes."""
    return list(_completion_listeners)


# Called in the transaction that terminates an instance (an administrator stopped it), so a
# domain can close what the instance carried: ``listener(instance, actor, reason)``.
TerminationListener = Callable[[Any, Any, str], None]
_termination_listeners: list[TerminationListener] = []


def on_instance_terminated(func: TerminationListener) -> TerminationListener:
    """Register a listener run when an administrator terminates an instance."""
    if func not in _termination_listeners:
        _termination_listeners.append(func)
    return func


def instance_terminated_listeners() -> list[TerminationListener]:
    """The listeners run when an instance is terminated."""
    return list(_termination_listeners)


def handler_names() -> list[str]:
    """Every registered handler name (for the modeler's picker)."""
    return sorted(_handlers)


@service_handler("noop")
def noop(context: HandlerContext) -> None:
    """Does nothing: a placeholder step analysts can wire before the real one exists."""
    return None
