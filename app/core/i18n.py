"""Translation helpers beside Flask-Babel's ``gettext``/``lazy_gettext``."""

from __future__ import annotations

SUPPORTED_LOCALES = ("fr", "en")  # French is the source language


def N_(message: str) -> str:
    """Mark a French label for extraction and keep it as is.

    Labels shared by the API (French by contract) and the pages are stored untranslated;
    the pages pass them through ``_()`` where they are shown.
    """
    return message
