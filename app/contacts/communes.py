"""French communes and their postal codes, to check the last line of a postal address.

The list comes from the npm package ``@etalab/decoupage-administratif`` (INSEE's Code
officiel géographique with La Poste's postal codes, Licence Ouverte 2.0). ``make vendor``
extracts it into ``app/static/vendor/data/communes-fr.json``; nothing is fetched at run time.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from app.contacts.normalise import fold

DATA_FILE = Path(__file__).resolve().parents[1] / "static" / "vendor" / "data" / "communes-fr.json"
POSTAL_CODE_RE = re.compile(r"^\d{5}$")
CEDEX_RE = re.compile(r"\s+cedex(\s+\d{1,3})?$")
_ABBREVIATIONS = {"st": "saint", "ste": "sainte", "s": "sur", "ss": "sous"}


@dataclass(frozen=True)
class Commune:
    code: str  # INSEE code, e.g. 44109
    name: str  # official name, e.g. « Nantes »
    department: str  # « 44 », « 2A », « 974 »
    kind: str  # c: commune, m: arrondissement municipal, a: commune associée
    postal_codes: tuple[str, ...]
    population: int

    @property
    def delivery_name(self) -> str:
        """The locality as La Poste prints it on line 6: capitals, no accents or hyphens."""
        return fold(self.name).upper()


class CommuneDataMissing(RuntimeError):
    """The vendored commune list is absent: run ``make vendor``."""


@dataclass(frozen=True)
class _Index:
    by_postal_code: dict[str, tuple[Commune, ...]]
    by_department: dict[str, tuple[Commune, ...]]
    by_code: dict[str, Commune]


@cache
def _index() -> _Index:
    if not DATA_FILE.exists():
        raise CommuneDataMissing(f"{DATA_FILE} est absent : lancez « make vendor ».")
    raw = json.loads(DATA_FILE.read_text(encoding="utf-8"))["communes"]
    by_postal_code: dict[str, list[Commune]] = defaultdict(list)
    by_department: dict[str, list[Commune]] = defaultdict(list)
    by_code: dict[str, Commune] = {}
    for code, name, department, kind, postal_codes, population in raw:
        commune = Commune(code, name, department, kind, tuple(postal_codes), population)
        by_code[code] = commune
        by_department[department].append(commune)
        for postal_code in postal_codes:
            by_postal_code[postal_code].append(commune)
    return _Index(
        {k: tuple(v) for k, v in by_postal_code.items()},
        {k: tuple(v) for k, v in by_department.items()},
        by_code,
    )


def comparable(city: str | None) -> str:
    """A locality folded for comparison: « ST-HERBLAIN » and « Saint-Herblain » agree."""
    words = fold(city).split()
    return " ".join(_ABBREVIATIONS.get(w, w) for w in words)


def communes_for_postal_code(postal_code: str) -> tuple[Commune, ...]:
    """The communes served by a postal code (empty when the code does not exist)."""
    return _index().by_postal_code.get((postal_code or "").strip(), ())


def communes_of_department(department: str) -> tuple[Commune, ...]:
    """The communes of a département (« 44 »), with their postal codes."""
    return _index().by_department.get(department, ())


def commune_by_code(code: str | None) -> Commune | None:
    """The commune with that INSEE code, or None."""
    return _index().by_code.get(code or "")


def department_of_postal_code(postal_code: str) -> str:
    """The département a postal code belongs to (« 44 », « 2A »/« 2B » → « 20 », « 974 »)."""
    if postal_code.startswith("97") or postal_code.startswith("98"):
        return postal_code[:3]
    return postal_code[:2]


def check_commune(postal_code: str, city: str) -> Commune:
    """The commune a French postal code and locality designate, or ValueError saying why.

    A CEDEX line (« 44041 NANTES CEDEX 1 ») carries a company code that is not in the
    public list: the locality must then be a commune of the postal code's département.
    """
    code = (postal_code or "").strip()
    if not POSTAL_CODE_RE.match(code):
        raise ValueError("Le code postal français compte 5 chiffres.")
    wanted = comparable(city)
    if not wanted:
        raise ValueError("La commune est obligatoire.")
    cedex = CEDEX_RE.search(wanted)
    if cedex:
        wanted = wanted[: cedex.start()]
        department = department_of_postal_code(code)
        if department == "20":
            pool = communes_of_department("2A") + communes_of_department("2B")
        else:
            pool = communes_of_department(department)
        for commune in pool:
            if comparable(commune.name) == wanted:
                return commune
        raise ValueError(f"Aucune commune « {city} » dans le département {department}.")
    served = communes_for_postal_code(code)
    if not served:
        raise ValueError(f"Le code postal {code} n'existe pas.")
    for commune in served:
        if comparable(commune.name) == wanted:
            return commune
    # Paris, Lyon, Marseille: « 75011 PARIS » names the city, not the arrondissement.
    for commune in served:
        if commune.kind == "m" and comparable(commune.name).startswith(wanted + " "):
            return commune
    names = ", ".join(sorted({c.name for c in served})[:8])
    raise ValueError(f"Le code postal {code} ne dessert pas « {city} » mais : {names}.")
