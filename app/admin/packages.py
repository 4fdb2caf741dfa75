"""Circuit packages: a zip holding a circuit's BPMN, its DMN decisions and its forms.

Reading is defensive: the archive comes from another installation, maybe from anyone.
Paths are checked (no absolute path, no ``..``, no link), sizes are bounded (archive,
number of entries, each file, the total once uncompressed), and only the expected kinds
of files are accepted.
"""

from __future__ import annotations

import io
import json
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath

FORMAT = "missive-circuit"
FORMAT_VERSION = 1
MAX_PACKAGE_BYTES = 20 * 1024 * 1024
MAX_ENTRIES = 200
MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_TOTAL_BYTES = 50 * 1024 * 1024


@dataclass
class PackageContent:
    """What a package holds, read and size-checked; ``errors`` lists what is refused."""

    manifest: dict = field(default_factory=dict)
    diagrams: list[tuple[str, bytes]] = field(default_factory=list)  # .bpmn and .dmn
    forms: dict[str, bytes] = field(default_factory=dict)  # form key -> JSON bytes
    errors: list[dict] = field(default_factory=list)

    def fail(self, name: str | None, message: str) -> None:
        self.errors.append({"file": name, "element_id": None, "message": message})


def build(manifest: dict, diagrams: list[tuple[str, str]], forms: dict[str, dict]) -> bytes:
    """Write a package: manifest.json, processes/ and decisions/ files, forms/<key>.json."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "manifest.json", json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True)
        )
        for name, text in diagrams:
            archive.writestr(name, text.encode("utf-8"))
        for key, schema in sorted(forms.items()):
            archive.writestr(
                f"forms/{key}.json", json.dumps(schema, ensure_ascii=False, indent=2) + "\n"
            )
    return buffer.getvalue()


def _unsafe_name(name: str) -> str | None:
    """Why an entry name is refused (None when it is a plain relative path)."""
    if "\\" in name or "\x00" in name:
        return "nom de fichier invalide"
    path = PurePosixPath(name)
    if path.is_absolute() or (path.parts and ":" in path.parts[0]):
        return "chemin absolu refusé"
    if any(part in ("..", "") for part in path.parts) or name.startswith("./"):
        return "chemin qui sort de l'archive refusé"
    return None


def read(raw: bytes) -> PackageContent:
    """Read a package from its bytes; problems are collected, nothing is written anywhere."""
    content = PackageContent()
    if len(raw) > MAX_PACKAGE_BYTES:
        content.fail(
            None, f"Archive trop volumineuse ({MAX_PACKAGE_BYTES // 1024 // 1024} Mo au plus)."
        )
        return content
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
        entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        content.fail(None, f"Ce fichier n'est pas une archive zip lisible : {exc}")
        return content
    if len(entries) > MAX_ENTRIES:
        content.fail(
            None, f"L'archive contient trop de fichiers ({len(entries)}, {MAX_ENTRIES} au plus)."
        )
        return content
    total = 0
    with archive:
        for info in entries:
            name = info.filename
            if info.is_dir():
                continue
            reason = _unsafe_name(name)
            if reason:
                content.fail(name, f"Fichier « {name} » refusé : {reason}.")
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                content.fail(
                    name, f"Fichier « {name} » refusé : les liens symboliques sont interdits."
                )
                continue
            if info.flag_bits & 0x1:
                content.fail(name, f"Fichier « {name} » refusé : archive chiffrée.")
                continue
            if info.file_size > MAX_FILE_BYTES:
                content.fail(name, f"Fichier « {name} » trop volumineux (5 Mo au plus).")
                continue
            total += info.file_size
            if total > MAX_TOTAL_BYTES:
                content.fail(None, "Contenu décompressé trop volumineux (50 Mo au plus).")
                return content
            try:
                with archive.open(info) as stream:
                    data = stream.read(MAX_FILE_BYTES + 1)
            except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as exc:
                content.fail(name, f"Fichier « {name} » illisible : {exc}")
                continue
            if len(data) > MAX_FILE_BYTES:  # the header lied about the size
                content.fail(name, f"Fichier « {name} » trop volumineux (5 Mo au plus).")
                continue
            _classify(content, name, data)
    if not content.diagrams:
        content.fail(None, "L'archive ne contient aucun diagramme BPMN ni table DMN.")
    return content


def _classify(content: PackageContent, name: str, data: bytes) -> None:
    path = PurePosixPath(name)
    lower = name.lower()
    if name == "manifest.json":
        try:
            manifest = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            content.fail(name, f"manifest.json illisible : {exc}")
            return
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            content.fail(name, "manifest.json ne décrit pas un circuit Missive.")
            return
        if int(manifest.get("format_version") or 0) > FORMAT_VERSION:
            content.fail(name, "Ce paquet vient d'une version plus récente de Missive.")
            return
        content.manifest = manifest
    elif lower.endswith((".bpmn", ".bpmn20.xml", ".dmn")):
        content.diagrams.append((path.name, data))
    elif len(path.parts) == 2 and path.parts[0] == "forms" and lower.endswith(".json"):
        content.forms[path.stem] = data
    else:
        content.fail(name, f"Fichier « {name} » inattendu dans un paquet de circuit.")
