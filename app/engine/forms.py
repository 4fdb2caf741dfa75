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
_PREFIXES = (
    "embedded:app:forms/",
    "embedded:deployment:",
    "app:forms/",
    "forms/",
    "camunda-forms:deployment:",
    "deployment:",
)


def normalise_form_key(raw: str) -> str | None:
    """Map the ways modelers spell a form key to a file stem in forms/ (None if invalid)."""
    key = (raw or "").strip()
    for prefix in _PREFIXES:
        if key.startswith(prefix):
            key = key[len(prefix) :]
    for suffix in (".json", ".form", ".html"):
        if key.endswith(suffix):
            key = key[: -len(suffix)]
    return key if _KEY_RE.match(key) else None


class FormRegistry:
    """The form files available to deployments: directories searched in order."""

    def __init__(self, *directories: Path):
        self.directories = [Path(d) for d in (directories or (FORMS_DIR,))]

    def path(self, key: str) -> Path | None:
        if _KEY_RE.match(key or "") is None:
            return None
        for directory in self.directories:
            candidate = directory / f"{key}.json"
            if candidate.is_file():
                return candidate
        return None

    def exists(self, key: str) -> bool:
        return self.path(key) is not None

    def schema(self, key: str) -> dict:
        """The JSON Schema of a form (ValueError when the file is not valid JSON)."""
        path = self.path(key)
        if path is None:
            raise KeyError(key)
        return json.loads(path.read_text(encoding="utf-8"))

    def keys(self) -> list[str]:
        """Every form key available (for the modeler's picker)."""
        return sorted({p.stem for d in self.directories for p in d.glob("*.json")})
