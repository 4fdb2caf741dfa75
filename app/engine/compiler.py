"""Read, check and compile uploaded BPMN and DMN files into deployable definitions.

Every problem becomes ``{"file", "element_id", "message"}`` in French; nothing raised by
lxml or SpiffWorkflow (including its ``KeyError``/``TypeError`` bugs) escapes as such.
The checks here run before SpiffWorkflow sees the file, because the library ignores some
unsupported elements silently and fails on others without naming them.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from app.engine import sandbox
from app.engine.forms import FormRegistry, normalise_form_key
from app.engine.handlers import handler_exists
from app.engine.spiff import CAMUNDA, MissiveParser, handler_name, spec_to_json

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
BPMNDI_NS = "http://www.omg.org/spec/BPMN/20100524/DI"
DMN_NAMESPACES = {
    "http://www.omg.org/spec/DMN/20151101/dmn.xsd",
    "http://www.omg.org/spec/DMN/20180521/MODEL/",
    "https://www.omg.org/spec/DMN/20191111/MODEL/",
    "https://www.omg.org/spec/DMN/20230324/MODEL/",
}
# Other engines' extension namespaces whose assignment attributes mean the same thing.
ALIAS_NAMESPACES = ("http://flowable.org/bpmn", "http://activiti.org/bpmn")
B = "{" + BPMN_NS + "}"
MAX_FILE_BYTES = 5 * 1024 * 1024

# Elements a process may contain. Anything else is refused by name and id.
SUPPORTED = {
    "startEvent",
    "endEvent",
    "intermediateCatchEvent",
    "intermediateThrowEvent",
    "boundaryEvent",
    "userTask",
    "manualTask",
    "task",
    "scriptTask",
    "serviceTask",
    "sendTask",
    "receiveTask",
    "businessRuleTask",
    "callActivity",
    "subProcess",
    "transaction",
    "exclusiveGateway",
    "parallelGateway",
    "inclusiveGateway",
    "eventBasedGateway",
    "sequenceFlow",
    "laneSet",
    "lane",
    "flowNodeRef",
    "childLaneSet",
    "textAnnotation",
    "text",
    "association",
    "dataObject",
    "dataObjectReference",
    "dataInputAssociation",
    "dataOutputAssociation",
    "sourceRef",
    "targetRef",
    "ioSpecification",
    "dataInput",
    "dataOutput",
    "inputSet",
    "outputSet",
    "dataInputRefs",
    "dataOutputRefs",
    "documentation",
    "extensionElements",
    "incoming",
    "outgoing",
    "conditionExpression",
    "timerEventDefinition",
    "timeDate",
    "timeDuration",
    "timeCycle",
    "messageEventDefinition",
    "signalEventDefinition",
    "errorEventDefinition",
    "escalationEventDefinition",
    "terminateEventDefinition",
    "cancelEventDefinition",
    "script",
    "multiInstanceLoopCharacteristics",
    "loopCardinality",
    "completionCondition",
    "loopDataInputRef",
    "loopDataOutputRef",
    "inputDataItem",
    "outputDataItem",
    "standardLoopCharacteristics",
    "loopCondition",
    "property",
    "dataState",
    "group",
    "category",
    "categoryValue",
    "correlationKey",
    "correlationPropertyRef",
    "inputSetRefs",
    "outputSetRefs",
    "optionalInputRefs",
    "optionalOutputRefs",
    "whileExecutingInputRefs",
    "whileExecutingOutputRefs",
    "assignment",
    "from",
    "to",
    "formalExpression",
}
# Resource roles: lanes and camunda attributes carry assignment in Missive; these are
# accepted and ignored with a warning.
IGNORED_WITH_WARNING = {"potentialOwner", "humanPerformer", "performer"}
REFUSED = {
    "complexGateway": "passerelle complexe",
    "compensateEventDefinition": "compensation",
    "linkEventDefinition": "événement de lien",
    "dataStoreReference": "référence à un entrepôt de données (sans implémentation)",
    "conditionalEventDefinition": "événement conditionnel",
    "adHocSubProcess": "sous-processus ad hoc",
    "transformation": "transformation de données",
}
_ISO_LITERAL = re.compile(
    r"^(R\d*/)?(P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?"
    r"|\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:?\d{2})?)?)"
    r"(/(P[\dYMWDTHS.]+|\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:?\d{2})?)?))?$"
)


@dataclass
class Problem:
    file: str | None
    element_id: str | None
    message: str

    def as_dict(self) -> dict:
        return {"file": self.file, "element_id": self.element_id, "message": self.message}


@dataclass
class CompiledProcess:
    """One executable process, ready to be stored as a definition version."""

    key: str
    name: str
    version_tag: str | None
    filename: str
    source: str
    spec_json: str
    content_hash: str
    forms: dict[str, dict]
    called_keys: list[str]
    decision_keys: list[str]
    starters: dict[str, list[str]] = field(default_factory=dict)
    start_form_key: str | None = None
    initiator_variable: str | None = None


@dataclass
class CompiledDecision:
    key: str
    name: str
    filename: str
    source: str
    content_hash: str


@dataclass
class Compilation:
    processes: list[CompiledProcess] = field(default_factory=list)
    decisions: list[CompiledDecision] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


@dataclass
class _Document:
    filename: str
    source: str
    root: etree._Element
    kind: str  # "bpmn" or "dmn"


@dataclass
class Library:
    """Already deployed sources that uploads may reference (called processes, decisions)."""

    process_sources: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (file, xml)
    decision_sources: dict[str, tuple[str, str]] = field(default_factory=dict)


def _secure_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        load_dtd=False,
    )


def read_document(filename: str, raw: bytes, problems: list[Problem]) -> _Document | None:
    """Parse one uploaded file safely; report unreadable, oversized or foreign files."""
    if len(raw) > MAX_FILE_BYTES:
        problems.append(Problem(filename, None, "Fichier trop volumineux (5 Mo au plus)."))
        return None
    if b"<!DOCTYPE" in raw[:2048] or b"<!ENTITY" in raw:
        problems.append(
            Problem(
                filename,
                None,
                "Les déclarations DOCTYPE/ENTITY sont refusées pour des raisons de sécurité.",
            )
        )
        return None
    try:
        root = etree.fromstring(raw, _secure_parser())
    except etree.XMLSyntaxError as exc:
        message = str(exc)
        if "encoding" in message.lower() or "utf-8" in message.lower() or "Input is not" in message:
            text = (
                "Encodage incorrect : le contenu ne correspond pas à l'encodage déclaré "
                f"(attendu UTF-8 par défaut). Détail : {message}"
            )
        else:
            text = f"XML illisible : {message}"
        problems.append(Problem(filename, None, text))
        return None
    except (ValueError, etree.LxmlError) as exc:
        problems.append(Problem(filename, None, f"XML illisible : {exc}"))
        return None
    namespace = etree.QName(root).namespace
    local = etree.QName(root).localname
    if local == "definitions" and namespace == BPMN_NS:
        kind = "bpmn"
    elif local == "definitions" and namespace in DMN_NAMESPACES:
        kind = "dmn"
    else:
        problems.append(
            Problem(
                filename,
                None,
                "Ce fichier n'est ni un diagramme BPMN 2.0 ni une table DMN "
                f"(élément racine : {root.tag}).",
            )
        )
        return None
    try:
        source = raw.decode(root.getroottree().docinfo.encoding or "utf-8")
    except (LookupError, UnicodeDecodeError):
        source = raw.decode("utf-8", "replace")
    return _Document(filename, source, root, kind)


def _local(element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def _label(element) -> str:
    name = " ".join((element.get("name") or "").split())
    ident = element.get("id")
    return f"« {name} » ({ident})" if name else f"{ident}"


def _is_bpmn(element) -> bool:
    return isinstance(element.tag, str) and element.tag.startswith(B)


class _ProcessChecker:
    """Checks one process element and rewrites its expressions into the sandbox dialect."""

    def __init__(
        self,
        document: _Document,
        process,
        forms: FormRegistry,
        known_decisions: set[str],
        known_processes: set[str],
        problems: list[Problem],
        warnings: list[Problem] | None = None,
    ):
        self.doc = document
        self.process = process
        self.forms = forms
        self.known_decisions = known_decisions
        self.known_processes = known_processes
        self.problems = problems
        self.warnings = warnings if warnings is not None else []
        self.form_keys: set[str] = set()
        self.start_form_key: str | None = None
        self.initiator_variable: str | None = None
        self.called: set[str] = set()
        self.decisions: set[str] = set()
        self.flows = {f.get("id"): f for f in process.iter(B + "sequenceFlow")}

    def fail(self, element, message: str) -> None:
        ident = element.get("id") if element is not None else None
        self.problems.append(Problem(self.doc.filename, ident, message))

    def run(self) -> None:
        self.check_elements()
        self.check_start_events(self.process, top=True)
        for element in list(self.process.iter()):  # handlers may remove elements
            if not _is_bpmn(element):
                continue
            local = _local(element)
            check = getattr(self, f"on_{local}", None)
            if check:
                check(element)
        self.check_outgoing()

    def check_elements(self) -> None:
        self._walk(self.process)

    def _walk(self, parent) -> None:
        for element in parent:
            if not isinstance(element.tag, str) or not _is_bpmn(element):
                continue  # other namespaces (vendor extensions) are not the engine's business
            local = _local(element)
            if local == "extensionElements":
                continue
            if local in REFUSED:
                self.fail(
                    self._owner(element),
                    f"Élément non pris en charge : {REFUSED[local]} "
                    f"{_label(self._owner(element))}.",
                )
                continue
            if local in IGNORED_WITH_WARNING:
                self.warnings.append(
                    Problem(
                        self.doc.filename,
                        self._owner(element).get("id"),
                        f"Affectation BPMN « {local} » ignorée pour "
                        f"{_label(self._owner(element))} : utilisez les couloirs ou "
                        "camunda:candidateGroups.",
                    )
                )
                continue
            if local not in SUPPORTED:
                self.fail(
                    self._owner(element),
                    f"Élément BPMN non pris en charge : {local} "
                    f"dans {_label(self._owner(element))}.",
                )
                continue
            if element.get("isForCompensation") == "true":
                self.fail(
                    element, f"La compensation n'est pas prise en charge : {_label(element)}."
                )
            self._walk(element)

    @staticmethod
    def _owner(element):
        """The element to name in a message: an event for its definition, else the element
        itself or its nearest ancestor with an id."""
        node = element
        if _local(node).endswith("EventDefinition") and node.getparent() is not None:
            node = node.getparent()
        while node is not None and not node.get("id"):
            node = node.getparent()
        return node if node is not None else element

    def check_start_events(self, container, top: bool) -> None:
        starts = [c for c in container if _is_bpmn(c) and _local(c) == "startEvent"]
        if top and not starts:
            self.fail(container, f"Le processus {_label(container)} n'a pas d'événement de début.")
        if not top and container.get("triggeredByEvent") != "true" and len(starts) != 1:
            self.fail(
                container,
                f"Le sous-processus {_label(container)} doit avoir exactement "
                f"un événement de début (il en a {len(starts)}).",
            )
        for child in container:
            if _is_bpmn(child) and _local(child) in ("subProcess", "transaction"):
                self.check_start_events(child, top=False)

    def check_outgoing(self) -> None:
        outgoing: dict[str, list] = {}
        for flow in self.flows.values():
            outgoing.setdefault(flow.get("sourceRef"), []).append(flow)
        nodes = {e.get("id"): e for e in self.process.iter() if _is_bpmn(e) and e.get("id")}
        for source_id, flows in outgoing.items():
            source = nodes.get(source_id)
            if source is None:
                for flow in flows:
                    self.fail(
                        flow, f"Le flux {_label(flow)} part d'un élément inexistant ({source_id})."
                    )
                continue
            kind = _local(source)
            if kind in ("exclusiveGateway", "inclusiveGateway"):
                default = source.get("default")
                if len(flows) > 1:
                    for flow in flows:
                        if (
                            flow.get("id") != default
                            and flow.find(B + "conditionExpression") is None
                        ):
                            self.fail(
                                flow,
                                f"Le flux {_label(flow)} qui sort de la passerelle "
                                f"{_label(source)} n'a ni condition ni statut de "
                                "flux par défaut.",
                            )
            elif kind not in ("parallelGateway", "eventBasedGateway") and len(flows) > 1:
                self.fail(
                    source,
                    f"L'élément {_label(source)} a plusieurs flux sortants : "
                    "ajoutez une passerelle (parallèle ou exclusive) pour les "
                    "distinguer.",
                )
            elif kind not in ("exclusiveGateway", "inclusiveGateway"):
                for flow in flows:
                    if (
                        flow.find(B + "conditionExpression") is not None
                        and (flow.find(B + "conditionExpression").text or "").strip()
                    ):
                        self.fail(
                            flow,
                            f"Le flux conditionnel {_label(flow)} doit partir "
                            "d'une passerelle exclusive ou inclusive.",
                        )

    def _rewrite(self, element, text: str | None, what: str, owner) -> None:
        try:
            python = sandbox.normalise_expression(text or "")
        except sandbox.SandboxError as exc:
            self.fail(owner, f"{what} de {_label(owner)} invalide : {exc}")
            return
        element.text = python

    def on_conditionExpression(self, element) -> None:
        flow = element.getparent()
        language = (element.get("language") or "").lower()
        if (
            language
            and not any(k in language for k in ("python", "juel", "javascript"))
            and "feel" in language
        ):
            self.fail(
                flow,
                f"La condition de {_label(flow)} est en FEEL, non pris en charge ; "
                "écrivez-la en Python ou en ${…}.",
            )
            return
        if not (element.text or "").strip():
            element.getparent().remove(element)  # empty condition == no condition
            return
        if element.text.strip().startswith("="):
            self.fail(
                flow,
                f"La condition de {_label(flow)} est une expression FEEL (« = … », "
                "Camunda 8), non prise en charge ; écrivez-la en Python ou en ${…}.",
            )
            return
        self._rewrite(element, element.text, "La condition", flow)

    def on_timerEventDefinition(self, element) -> None:
        event = element.getparent()
        specs = [c for c in element if _local(c) in ("timeDate", "timeDuration", "timeCycle")]
        if not specs or not (specs[0].text or "").strip():
            self.fail(
                event,
                f"La minuterie {_label(event)} n'a pas d'expression de date, de durée ou de cycle.",
            )
            return
        spec = specs[0]
        text = spec.text.strip()
        if _ISO_LITERAL.match(text):
            spec.text = json.dumps(text)
        else:
            self._rewrite(spec, text, "L'expression de minuterie", event)

    def on_userTask(self, element) -> None:
        self._alias_attributes(element)
        key = element.get(CAMUNDA + "formKey")
        if key:
            normalised = normalise_form_key(key)
            if normalised is None or not self.forms.exists(normalised):
                self.fail(
                    element,
                    f"Formulaire inconnu « {key} » pour la tâche "
                    f"{_label(element)} (fichiers attendus dans forms/).",
                )
            else:
                element.set(CAMUNDA + "formKey", normalised)
                self.form_keys.add(normalised)
        for attribute in (
            "assignee",
            "candidateUsers",
            "candidateGroups",
            "dueDate",
            "followUpDate",
            "priority",
        ):
            value = (element.get(CAMUNDA + attribute) or "").strip()
            if sandbox.is_camunda_expression(value):
                try:
                    sandbox.translate_camunda(value)
                except sandbox.SandboxError as exc:
                    self.fail(element, f"Attribut {attribute} de {_label(element)} : {exc}")

    def _alias_attributes(self, element) -> None:
        for namespace in ALIAS_NAMESPACES:
            for attribute in (
                "assignee",
                "candidateUsers",
                "candidateGroups",
                "dueDate",
                "priority",
                "formKey",
                "initiator",
            ):
                value = element.get("{" + namespace + "}" + attribute)
                if value and element.get(CAMUNDA + attribute) is None:
                    element.set(CAMUNDA + attribute, value)

    def on_startEvent(self, element) -> None:
        self._alias_attributes(element)
        if element.getparent() is not self.process:
            return
        initiator = (element.get(CAMUNDA + "initiator") or "").strip()
        if initiator:
            self.initiator_variable = initiator
        key = element.get(CAMUNDA + "formKey")
        if key:
            normalised = normalise_form_key(key)
            if normalised is None or not self.forms.exists(normalised):
                self.fail(
                    element, f"Formulaire de démarrage inconnu « {key} » pour {_label(element)}."
                )
            else:
                self.start_form_key = normalised
                self.form_keys.add(normalised)

    def on_serviceTask(self, element) -> None:
        name = handler_name(element)
        if not name:
            self.fail(
                element,
                f"La tâche de service {_label(element)} ne nomme aucun "
                'gestionnaire (camunda:type="external" et camunda:topic).',
            )
        elif not handler_exists(name):
            self.fail(
                element,
                f"Gestionnaire de tâche de service inconnu « {name} » pour {_label(element)}.",
            )

    def on_scriptTask(self, element) -> None:
        language = (element.get("scriptFormat") or "python").lower()
        if language not in ("python", "text/x-python", "py"):
            self.fail(
                element,
                f"Langage de script non pris en charge ({language}) pour "
                f"{_label(element)} : seul Python est accepté.",
            )
            return
        script = element.find(B + "script")
        if script is None or not (script.text or "").strip():
            self.fail(element, f"La tâche de script {_label(element)} est vide.")
            return
        try:
            sandbox.check_script(script.text)
        except sandbox.SandboxError as exc:
            self.fail(element, f"Script de {_label(element)} refusé : {exc}")

    def on_businessRuleTask(self, element) -> None:
        ref = (element.get(CAMUNDA + "decisionRef") or "").strip()
        if not ref:
            self.fail(
                element,
                f"La tâche de règle métier {_label(element)} n'indique pas sa "
                "table de décision (camunda:decisionRef).",
            )
        elif ref not in self.known_decisions:
            self.fail(
                element,
                f"Table de décision inconnue « {ref} » pour {_label(element)} : "
                "déployez le fichier DMN avec le diagramme ou avant lui.",
            )
        else:
            self.decisions.add(ref)

    def on_callActivity(self, element) -> None:
        called = (element.get("calledElement") or "").strip()
        if not called:
            self.fail(
                element,
                f"L'activité d'appel {_label(element)} n'indique pas le "
                "processus appelé (calledElement).",
            )
        elif called not in self.known_processes:
            self.fail(
                element,
                f"Processus appelé inconnu « {called} » pour {_label(element)} : "
                "déployez-le avant ou dans le même envoi.",
            )
        else:
            self.called.add(called)

    def on_multiInstanceLoopCharacteristics(self, element) -> None:
        activity = element.getparent()
        has_cardinality = element.find(B + "loopCardinality") is not None
        has_input = element.find(B + "loopDataInputRef") is not None
        if not (has_cardinality or has_input or element.get(CAMUNDA + "collection")):
            self.fail(
                activity,
                f"L'activité multi-instance {_label(activity)} n'indique ni "
                "cardinalité ni collection.",
            )
        for child in element:
            if (
                _local(child) in ("loopCardinality", "completionCondition")
                and (child.text or "").strip()
            ):
                self._rewrite(child, child.text, "L'expression multi-instance", activity)
        collection = element.get(CAMUNDA + "collection")
        if collection and sandbox.is_camunda_expression(collection):
            try:
                element.set(CAMUNDA + "collection", sandbox.translate_camunda(collection))
            except sandbox.SandboxError as exc:
                self.fail(activity, f"Collection de {_label(activity)} : {exc}")

    def on_standardLoopCharacteristics(self, element) -> None:
        condition = element.find(B + "loopCondition")
        if condition is not None and (condition.text or "").strip():
            self._rewrite(condition, condition.text, "La condition de boucle", element.getparent())


RESERVED_IDS = {"Start", "End", "Root"}
_REFERENCE_ATTRIBUTES = ("sourceRef", "targetRef", "attachedToRef", "default")
_REFERENCE_ELEMENTS = ("incoming", "outgoing", "flowNodeRef", "sourceRef", "targetRef")


def protect_reserved_ids(root) -> dict[str, str]:
    """Rename elements whose id SpiffWorkflow uses internally ("Start", "End"…).

    A diagram with ``<startEvent id="Start">`` otherwise loses every task silently. The
    renamed ids are put back on the compiled specs (``restore_reserved_ids``), so task
    rows and error messages still name the element as the analyst drew it.
    """
    renamed: dict[str, str] = {}
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        ident = element.get("id")
        if ident in RESERVED_IDS or (ident and ident.endswith(".EndJoin")):
            new = f"{ident}__missive"
            element.set("id", new)
            renamed[ident] = new
    if not renamed:
        return {}
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        for attribute in _REFERENCE_ATTRIBUTES:
            if element.get(attribute) in renamed:
                element.set(attribute, renamed[element.get(attribute)])
        if _local(element) in _REFERENCE_ELEMENTS and (element.text or "").strip() in renamed:
            element.text = renamed[element.text.strip()]
    return {new: old for old, new in renamed.items()}


def restore_reserved_ids(specs, renamed: dict[str, str]) -> None:
    """Give compiled task specs back the element ids of the diagram."""
    for spec in specs:
        for task_spec in spec.task_specs.values():
            original = renamed.get(getattr(task_spec, "bpmn_id", None))
            if original:
                task_spec.bpmn_id = original


def _dmn_decisions(document: _Document) -> list[Any]:
    return [d for d in document.root if isinstance(d.tag, str) and _local(d) == "decision"]


def _decision_document(document: _Document, decision) -> etree._Element:
    """A copy of a DMN document holding only ``decision`` (SpiffWorkflow reads one per file)."""
    root = copy.deepcopy(document.root)
    for child in list(root):
        # keep only this decision (drop the others and the diagram interchange)
        if isinstance(child.tag, str) and (
            _local(child) != "decision" or child.get("id") != decision.get("id")
        ):
            root.remove(child)
    return root


# A "?" outside string literals: the cell is an expression on the input value.
_INPUT_MARK = re.compile(r"\?(?=(?:[^'\"]|['\"][^'\"]*['\"])*$)")
_FEEL_RANGE = re.compile(r"^([\[\]\(])\s*(.+?)\s*\.\.\s*(.+?)\s*([\[\]\)])$")


def feel_unary_test(text: str) -> str | None:
    """Translate the FEEL unary tests Camunda Modeler writes into the sandbox dialect.

    Returns None for "any value" (``-`` or empty). Supported: literals, comparisons,
    ranges ``[a..b]``, lists ``"a","b"`` and ``not(…)``; a cell naming the input with
    ``?`` outside quotes (``mentions(?, "route")``) is kept as is and must be a valid
    expression.
    """
    text = (text or "").strip()
    if text in ("", "-"):
        return None
    if _INPUT_MARK.search(text):
        return text
    negate = False
    match = re.fullmatch(r"not\s*\((.*)\)", text, re.S)
    if match:
        negate, text = True, match.group(1).strip()
    range_match = _FEEL_RANGE.match(text)
    if range_match:
        opening, low, high, closing = range_match.groups()
        low_op = ">=" if opening == "[" else ">"
        high_op = "<=" if closing == "]" else "<"
        python = f"(? {low_op} {_feel_literal(low)} and ? {high_op} {_feel_literal(high)})"
    elif re.match(r"^(<=|>=|<|>|!=|==)", text):
        python = "? " + _feel_literal(text)
    else:
        items = _split_top_level(text)
        if len(items) > 1:
            python = "? in (" + ", ".join(_feel_literal(i) for i in items) + ")"
        else:
            python = "? == " + _feel_literal(text)
    return f"not ({python})" if negate else python


def _feel_literal(text: str) -> str:
    text = text.strip()
    return {"true": "True", "false": "False", "null": "None"}.get(text, text)


def _split_top_level(text: str) -> list[str]:
    items, depth, current, quote = [], 0, [], None
    for ch in text:
        if quote:
            current.append(ch)
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
            current.append(ch)
        elif ch in "([":
            depth += 1
            current.append(ch)
        elif ch in ")]":
            depth -= 1
            current.append(ch)
        elif ch == "," and depth == 0:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    items.append("".join(current).strip())
    return [i for i in items if i]


def _check_decision(document: _Document, decision, problems: list[Problem]) -> None:
    """Check a decision table and rewrite FEEL cells into the sandbox dialect."""
    tables = [c for c in decision if _local(c) == "decisionTable"]
    if len(tables) != 1:
        problems.append(
            Problem(
                document.filename,
                decision.get("id"),
                f"La décision {_label(decision)} doit contenir exactement une table de décision.",
            )
        )
        return
    table = tables[0]
    policy = (table.get("hitPolicy") or "UNIQUE").upper()
    if policy not in ("UNIQUE", "FIRST", "COLLECT"):
        problems.append(
            Problem(
                document.filename,
                table.get("id"),
                f"Politique de résultat « {policy} » non prise en charge pour "
                f"{_label(decision)} (UNIQUE, FIRST ou COLLECT).",
            )
        )
    if table.get("aggregation"):
        problems.append(
            Problem(
                document.filename,
                table.get("id"),
                "Les agrégations COLLECT (SUM, COUNT…) ne sont pas prises en charge.",
            )
        )
    for expression in table.iter():
        if _local(expression) == "inputExpression":
            text_node = next((c for c in expression if _local(c) == "text"), None)
            text = text_node.text if text_node is not None else ""
            try:
                text_node.text = sandbox.normalise_expression(text)
            except (sandbox.SandboxError, AttributeError) as exc:
                problems.append(
                    Problem(
                        document.filename,
                        expression.get("id"),
                        f"Expression d'entrée invalide dans {_label(decision)} : {exc}",
                    )
                )
    for rule_number, rule in enumerate((r for r in table if _local(r) == "rule"), start=1):
        for entry in rule:
            text_node = next((c for c in entry if _local(c) == "text"), None)
            if text_node is None:
                continue
            if _local(entry) == "inputEntry":
                translated = feel_unary_test(text_node.text)
                if translated is None:
                    # "-" is SpiffWorkflow's "any value"; an empty text would match nothing
                    # (Camunda Modeler writes empty cells as <text></text>).
                    text_node.text = "-"
                    continue
                probe = translated.replace("?", "v")
            elif _local(entry) == "outputEntry":
                translated = _feel_literal(text_node.text or "")
                if not translated:
                    text_node.text = "None"
                    continue
                probe = translated
            else:
                continue
            try:
                sandbox.check_expression(probe)
            except sandbox.SandboxError as exc:
                problems.append(
                    Problem(
                        document.filename,
                        entry.get("id"),
                        f"Cellule invalide (règle {rule_number}) de "
                        f"{_label(decision)} : « {text_node.text} » — {exc}",
                    )
                )
                continue
            text_node.text = translated


def _c14n(element) -> bytes:
    """Canonical bytes of an element: namespaces, attribute order and blank text normalised."""
    clone = copy.deepcopy(element)
    for node in clone.iter():
        if node.text is not None and not node.text.strip():
            node.text = None
        if node.tail is not None and not node.tail.strip():
            node.tail = None
    return etree.tostring(clone, method="c14n", exclusive=True, with_comments=False)


def _process_hash(
    document: _Document,
    process,
    forms: dict[str, dict],
    decision_hashes: dict[str, str],
    called_hashes: dict[str, str],
) -> str:
    ids = {e.get("id") for e in process.iter() if isinstance(e.tag, str) and e.get("id")}
    digest = hashlib.sha256(_c14n(process))
    for shape in document.root.iter("{" + BPMNDI_NS + "}BPMNShape", "{" + BPMNDI_NS + "}BPMNEdge"):
        if shape.get("bpmnElement") in ids:
            digest.update(_c14n(shape))
    digest.update(json.dumps(forms, sort_keys=True).encode())
    digest.update(json.dumps(decision_hashes, sort_keys=True).encode())
    digest.update(json.dumps(called_hashes, sort_keys=True).encode())
    return digest.hexdigest()


def _spiff_problem(filename: str | None, exc: Exception) -> Problem:
    element_id = getattr(exc, "id", None) or None
    message = str(exc).strip() or type(exc).__name__
    if isinstance(exc, KeyError | TypeError | AttributeError | IndexError):
        message = (
            f"Le moteur n'a pas pu lire ce diagramme ({type(exc).__name__}: {exc}). "
            "Vérifiez les éléments et attributs propres à un outil."
        )
    else:
        message = f"Diagramme refusé par le moteur : {message}"
    return Problem(getattr(exc, "file_name", None) or filename, element_id, message)


def compile_files(
    files: list[tuple[str, bytes]], forms: FormRegistry, library: Library | None = None
) -> Compilation:
    """Check and compile an upload of BPMN/DMN files (see module docstring)."""
    library = library or Library()
    result = Compilation()
    documents = [d for d in (read_document(n, raw, result.problems) for n, raw in files) if d]
    bpmn_docs = [d for d in documents if d.kind == "bpmn"]
    dmn_docs = [d for d in documents if d.kind == "dmn"]

    decisions: dict[str, tuple[_Document, Any]] = {}
    for document in dmn_docs:
        found = _dmn_decisions(document)
        if not found:
            result.problems.append(
                Problem(document.filename, None, "Ce fichier DMN ne contient aucune décision.")
            )
        for decision in found:
            key = decision.get("id")
            if key in decisions:
                result.problems.append(
                    Problem(
                        document.filename,
                        key,
                        f"Décision « {key} » présente deux fois dans l'envoi.",
                    )
                )
                continue
            _check_decision(document, decision, result.problems)
            decisions[key] = (document, decision)

    processes: dict[str, tuple[_Document, Any]] = {}
    for document in bpmn_docs:
        all_processes = list(document.root.iter(B + "process"))
        executable = [p for p in all_processes if p.get("isExecutable", "true") == "true"]
        if not all_processes:
            result.problems.append(
                Problem(document.filename, None, "Ce diagramme ne contient aucun processus.")
            )
        elif not executable:
            for process in all_processes:
                result.problems.append(
                    Problem(
                        document.filename,
                        process.get("id"),
                        f"Le processus {_label(process)} n'est pas exécutable "
                        '(isExecutable="false") : c\'est un modèle descriptif. '
                        "Cochez « Executable » dans le modeleur pour le déployer.",
                    )
                )
        for process in all_processes:
            if process not in executable:
                if executable:
                    result.warnings.append(
                        Problem(
                            document.filename,
                            process.get("id"),
                            f"Processus non exécutable ignoré : {_label(process)}.",
                        )
                    )
                continue
            key = process.get("id")
            if key in processes:
                result.problems.append(
                    Problem(
                        document.filename,
                        key,
                        f"Identifiant de processus « {key} » présent deux fois dans l'envoi.",
                    )
                )
                continue
            processes[key] = (document, process)

    known_decisions = set(decisions) | set(library.decision_sources)
    known_processes = set(processes) | set(library.process_sources)
    checkers: dict[str, _ProcessChecker] = {}
    for key, (document, process) in processes.items():
        checker = _ProcessChecker(
            document,
            process,
            forms,
            known_decisions,
            known_processes,
            result.problems,
            result.warnings,
        )
        checker.run()
        checkers[key] = checker
    if result.problems:
        return result

    parser = MissiveParser()
    renamed: dict[str, str] = {}
    try:
        for document in bpmn_docs:
            renamed.update(protect_reserved_ids(document.root))
            parser.add_bpmn_xml(document.root.getroottree(), filename=document.filename)
        for document, decision in decisions.values():
            parser.add_dmn_xml(_decision_document(document, decision), filename=document.filename)
        extra_processes = {k for c in checkers.values() for k in c.called} - set(processes)
        extra_decisions = {k for c in checkers.values() for k in c.decisions} - set(decisions)
        for key in sorted(extra_processes):
            filename, xml = library.process_sources[key]
            document = read_document(filename, xml.encode(), result.problems)
            called_process = next(
                p for p in document.root.iter(B + "process") if p.get("id") == key
            )
            _ProcessChecker(
                document, called_process, forms, known_decisions, known_processes, result.problems
            ).run()
            parser.add_bpmn_xml(document.root.getroottree(), filename=filename)
        for key in sorted(extra_decisions):
            filename, xml = library.decision_sources[key]
            root = etree.fromstring(xml.encode(), _secure_parser())
            document = _Document(filename, xml, root, "dmn")
            decision = next(d for d in _dmn_decisions(document) if d.get("id") == key)
            _check_decision(document, decision, result.problems)
            parser.add_dmn_xml(_decision_document(document, decision), filename=filename)
    except Exception as exc:  # SpiffWorkflow's parser raises bare KeyError/TypeError too
        result.problems.append(_spiff_problem(None, exc))
    if result.problems:
        return result

    decision_hashes = {
        key: hashlib.sha256(_c14n(decision)).hexdigest()
        for key, (_doc, decision) in decisions.items()
    }
    for key in library.decision_sources:
        decision_hashes.setdefault(
            key, hashlib.sha256(library.decision_sources[key][1].encode()).hexdigest()
        )
    process_hashes: dict[str, str] = {}

    def hash_of(key: str, stack: tuple[str, ...] = ()) -> str:
        if key in process_hashes:
            return process_hashes[key]
        if key not in processes:
            return hashlib.sha256(library.process_sources[key][1].encode()).hexdigest()
        if key in stack:
            return "recursive"
        document, process = processes[key]
        checker = checkers[key]
        forms_used = {k: forms.schema(k) for k in sorted(checker.form_keys)}
        value = _process_hash(
            document,
            process,
            forms_used,
            {d: decision_hashes[d] for d in sorted(checker.decisions)},
            {c: hash_of(c, (*stack, key)) for c in sorted(checker.called)},
        )
        process_hashes[key] = value
        return value

    for key, (document, process) in processes.items():
        checker = checkers[key]
        try:
            spec = parser.get_spec(key)
            subprocess_specs = parser.get_subprocess_specs(key)
            restore_reserved_ids([spec, *subprocess_specs.values()], renamed)
            spec_json = spec_to_json(spec, subprocess_specs)
        except Exception as exc:  # idem: structured, never a traceback
            result.problems.append(_spiff_problem(document.filename, exc))
            continue
        result.processes.append(
            CompiledProcess(
                key=key,
                name=process.get("name") or key,
                version_tag=process.get(CAMUNDA + "versionTag"),
                filename=document.filename,
                source=document.source,
                spec_json=spec_json,
                content_hash=hash_of(key),
                forms={k: forms.schema(k) for k in sorted(checker.form_keys)},
                called_keys=sorted(checker.called),
                decision_keys=sorted(checker.decisions),
                starters={
                    kind: [
                        v.strip()
                        for v in (process.get(CAMUNDA + attr) or "").split(",")
                        if v.strip()
                    ]
                    for kind, attr in (
                        ("groups", "candidateStarterGroups"),
                        ("users", "candidateStarterUsers"),
                    )
                },
                start_form_key=checker.start_form_key,
                initiator_variable=checker.initiator_variable,
            )
        )
    for key, (document, decision) in decisions.items():
        result.decisions.append(
            CompiledDecision(
                key=key,
                name=decision.get("name") or key,
                filename=document.filename,
                source=document.source,
                content_hash=decision_hashes[key],
            )
        )
    return result
