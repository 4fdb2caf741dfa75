"""Semantic comparison of two BPMN files: elements added, removed, changed (with properties).

Elements are matched by id, as bpmn-js and the engine do. An element's properties are its
attributes (Camunda extensions included) and the content of its children that have no id
of their own (conditions, documentation, extension elements, timer definitions…). The
diagram layout is compared separately: an element only moved on the drawing is "moved".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lxml import etree

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
BPMNDI_NS = "http://www.omg.org/spec/BPMN/20100524/DI"
PREFIXES = {
    BPMN_NS: "",
    "http://camunda.org/schema/1.0/bpmn": "camunda:",
    "http://www.w3.org/2001/XMLSchema-instance": "xsi:",
}
# Children that only repeat what sequence flows already say.
_REDUNDANT = {"incoming", "outgoing", "flowNodeRef"}
_MAX_FILE_BYTES = 5 * 1024 * 1024

PROPERTY_LABELS = {
    "type": "Type d'élément",
    "name": "Nom",
    "camunda:candidateGroups": "Groupes candidats",
    "camunda:candidateUsers": "Utilisateurs candidats",
    "camunda:assignee": "Responsable",
    "camunda:formKey": "Formulaire",
    "camunda:dueDate": "Échéance",
    "camunda:followUpDate": "Date de relance",
    "camunda:priority": "Priorité",
    "camunda:topic": "Gestionnaire",
    "camunda:type": "Type d'implémentation",
    "camunda:versionTag": "Étiquette de version",
    "camunda:decisionRef": "Décision",
    "conditionExpression": "Condition",
    "documentation": "Documentation",
    "sourceRef": "Source",
    "targetRef": "Cible",
    "default": "Flux par défaut",
    "isExecutable": "Exécutable",
}


_PROPERTY_PATH = re.compile(r"camunda:property\[([^\]]+)\](@value)?$")


class DiagramUnreadable(ValueError):
    """The text is not a BPMN file that can be compared."""


@dataclass
class ElementInfo:
    id: str
    type: str
    name: str | None
    properties: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict:
        return {"id": self.id, "type": self.type, "name": self.name}


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False, no_network=True, remove_comments=True, load_dtd=False
    )


def parse(source: str | bytes) -> etree._Element:
    """Parse BPMN text safely (no entities, no network)."""
    raw = source.encode("utf-8") if isinstance(source, str) else source
    if len(raw) > _MAX_FILE_BYTES:
        raise DiagramUnreadable("Fichier trop volumineux (5 Mo au plus).")
    if b"<!DOCTYPE" in raw[:2048] or b"<!ENTITY" in raw:
        raise DiagramUnreadable("Les déclarations DOCTYPE/ENTITY sont refusées.")
    try:
        return etree.fromstring(raw, _parser())
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise DiagramUnreadable(f"XML illisible : {exc}") from exc


def _name(qname: str) -> str:
    if qname.startswith("{"):
        namespace, _, local = qname[1:].partition("}")
        return PREFIXES.get(namespace, "{" + namespace + "}") + local
    return qname


def _is_element(node) -> bool:
    return isinstance(node.tag, str)


_KEY_ATTRIBUTES = ("name", "key", "variable")


def _flatten(node, path: str, into: dict[str, str], key_attribute: str | None = None) -> None:
    """Record the attributes and text of a child without id, and of its own children."""
    for attribute, value in sorted(node.attrib.items()):
        if attribute != key_attribute:
            into[f"{path}@{_name(attribute)}"] = value
    text = " ".join((node.text or "").split())
    if text:
        into[path] = text
    counts: dict[str, int] = {}
    for child in node:
        if not _is_element(child) or child.get("id"):
            continue
        tag = _name(child.tag)
        key_attribute = next((a for a in _KEY_ATTRIBUTES if child.get(a)), None)
        key = child.get(key_attribute) if key_attribute else None
        counts[tag] = counts.get(tag, 0) + 1
        suffix = f"[{key}]" if key else (f"[{counts[tag]}]" if counts[tag] > 1 else "")
        _flatten(child, f"{path}/{tag}{suffix}", into, key_attribute)


def semantic_elements(root) -> dict[str, ElementInfo]:
    """Every BPMN element with an id (outside the diagram layout), with its properties."""
    elements: dict[str, ElementInfo] = {}
    for node in root.iter():
        if not _is_element(node) or not node.tag.startswith("{" + BPMN_NS + "}"):
            continue
        ident = node.get("id")
        if not ident or node is root:
            continue
        local = etree.QName(node).localname
        properties = {"type": local}
        for attribute, value in node.attrib.items():
            name = _name(attribute)
            if name != "id":
                properties[name] = value
        counts: dict[str, int] = {}
        for child in node:
            if not _is_element(child) or child.get("id"):
                continue
            tag = _name(child.tag)
            if tag in _REDUNDANT:
                continue
            counts[tag] = counts.get(tag, 0) + 1
            suffix = f"[{counts[tag]}]" if counts[tag] > 1 else ""
            _flatten(child, tag + suffix, properties)
        elements[ident] = ElementInfo(ident, local, node.get("name"), properties)
    return elements


def layout(root) -> dict[str, tuple]:
    """Position of each drawn element: bounds of shapes, waypoints of edges."""
    positions: dict[str, tuple] = {}
    for shape in root.iter("{" + BPMNDI_NS + "}BPMNShape", "{" + BPMNDI_NS + "}BPMNEdge"):
        ident = shape.get("bpmnElement")
        if not ident:
            continue
        points = []
        for child in shape.iter():
            if not _is_element(child):
                continue
            local = etree.QName(child).localname
            if (
                local in ("Bounds", "waypoint")
                and child.getparent() is not None
                and (etree.QName(child.getparent()).localname != "BPMNLabel")
            ):
                points.append(
                    tuple(
                        round(float(child.get(a) or 0))
                        for a in ("x", "y", "width", "height")
                        if child.get(a) is not None
                    )
                )
        positions[ident] = tuple(points)
    return positions


def property_label(name: str) -> str:
    """The French label of a compared property (its path when no label is known)."""
    if name in PROPERTY_LABELS:
        return PROPERTY_LABELS[name]
    match = _PROPERTY_PATH.search(name)
    if match:
        return f"Propriété « {match.group(1)} »"
    head = name.split("/")[0].split("@")[0]
    if head in PROPERTY_LABELS and head != name:
        return f"{PROPERTY_LABELS[head]} ({name[len(head) :].lstrip('/@')})"
    return name


def compare(old_source: str | bytes, new_source: str | bytes) -> dict:
    """What changed between two BPMN files: added, removed, changed (properties), moved."""
    old_root, new_root = parse(old_source), parse(new_source)
    old, new = semantic_elements(old_root), semantic_elements(new_root)
    added = [new[i].summary() for i in new if i not in old]
    removed = [old[i].summary() for i in old if i not in new]
    changed = []
    for ident in old:
        if ident not in new:
            continue
        before, after = old[ident].properties, new[ident].properties
        changes = [
            {
                "property": name,
                "label": property_label(name),
                "old": before.get(name),
                "new": after.get(name),
            }
            for name in sorted(set(before) | set(after))
            if before.get(name) != after.get(name)
        ]
        if changes:
            changed.append({**new[ident].summary(), "changes": changes})
    old_layout, new_layout = layout(old_root), layout(new_root)
    moved = sorted(
        ident
        for ident in set(old_layout) & set(new_layout)
        if old_layout[ident] != new_layout[ident] and ident in old and ident in new
    )
    return {"added": added, "removed": removed, "changed": changed, "moved": moved}
