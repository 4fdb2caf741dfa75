"""Retention: how long exchanges are kept, applied by the worker through domain sources.

Retention periods are set per case type (``RetentionRule``). The contact base does not
own cases: the domain that does (correspondence) registers a ``RetentionSource`` telling
which closed items of a case type are past their period, how to purge them, and which
contacts still have items. ``services.apply_retention`` walks the rules and the sources,
then anonymises the persons left with no exchange and untouched for
``CONTACT_RETENTION_MONTHS`` (natural persons only: companies' data is not personal).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class RetentionSource:
    """What a domain tells the retention job about the items it owns."""

    name: str
    # ids of the items of ``case_type`` closed before ``cutoff``
    expired: Callable[[str, datetime], Iterable[int]]
    # purge those items (``action`` is "anonymise" or "delete"); returns how many were purged
    purge: Callable[[str, list[int], str], int]
    # of the given contact ids, those that still have items in this domain
    contacts_with_items: Callable[[list[int]], set[int]]


_sources: dict[str, RetentionSource] = {}


def register_retention_source(source: RetentionSource) -> RetentionSource:
    """Plug a domain's items into the retention job (one source per name)."""
    _sources[source.name] = source
    return source


def unregister_retention_source(name: str) -> None:
    """Remove a source (tests, plug-ins being disabled)."""
    _sources.pop(name, None)


def retention_sources() -> list[RetentionSource]:
    """The registered sources."""
    return list(_sources.values())
