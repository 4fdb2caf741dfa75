"""Task forms: JSON Schema files in ``forms/`` named by a user task's ``camunda:formKey``.

A form file is a JSON Schema (2020-12) object; its ``title`` names the form and the
optional ``x-ui`` object carries display hints (field order, widgets, help texts).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from app.core.config import PROJECT_ROOT

FORMS_DIR = PROJECT_ROOT / "forms"
_KEY_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,80}$")
_PREFIXES = ("embedded:app:forms/", "embedded:deployment:", "app:forms/", "forms/",
             "camunda-forms:deployment:", "deployment:")


def normalise_form_key(raw: str) -> str | None:
    """Map the ways modelers spell a form key to a file stem in forms/ (None if invalid)."""
    key = (raw or "").strip()
    for prefix in _PREFIXES:
        if key.startswith(prefix):
            key = key[len(prefix):]
    for suffix in (".json", ".form", ".html"):
        if key.endswith(suffix):
            key = key[: -len(suffix)]
    return key if _KEY_RE.match(key) else None


class FormRegistry:
    """The form files available to deployments (a directory, read on demand)."""

    def __init__(self, directory: Path = FORMS_DIR):
        self.directory = Path(directory)

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def exists(self, key: str) -> bool:
        return _KEY_RE.match(key or "") is not None and self.path(key).is_file()

    def schema(self, key: str) -> dict:
        """The JSON Schema of a form (ValueError when the file is not valid JSON)."""
        return json.loads(self.path(key).read_text(encoding="utf-8"))

    def keys(self) -> list[str]:
        """Every form key available (for the modeler's picker)."""
        return sorted(p.stem for p in self.directory.glob("*.json"))
