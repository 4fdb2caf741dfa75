"""Builders of small circuits for the studio tests (BPMN written the way bpmn-js writes it)."""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

HEADER = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" '
    'xmlns:dc="http://www.omg.org/spec/DD/20100524/DC" '
    'xmlns:di="http://www.omg.org/spec/DD/20100524/DI" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" '
    'id="Definitions_{key}" targetNamespace="http://bpmn.io/schema/bpmn" '
    'exporter="Camunda Modeler" exporterVersion="5.30.0">\n'
)


def linear_circuit(
    key: str = "courrier_test",
    tasks: list[tuple[str, str, dict[str, str]]] | None = None,
    name: str = "Circuit de test",
    version_tag: str | None = None,
) -> str:
    """A start event, user tasks in a row, an end event; with a diagram (DI)."""
    if tasks is None:
        tasks = [
            ("Task_redaction", "Rédiger", {"camunda:candidateGroups": "redaction"}),
            ("Task_visa", "Viser", {"camunda:candidateGroups": "dgs", "camunda:formKey": "visa"}),
        ]
    nodes = [("StartEvent_1", "Début", "startEvent", {})]
    nodes += [(ident, label, "userTask", attrs) for ident, label, attrs in tasks]
    nodes.append(("EndEvent_1", "Fin", "endEvent", {}))
    tag = f' camunda:versionTag="{version_tag}"' if version_tag else ""
    body = [f'  <bpmn:process id="{key}" name={quoteattr(name)} isExecutable="true"{tag}>']
    flows = [(f"Flow_{i}", nodes[i][0], nodes[i + 1][0]) for i in range(len(nodes) - 1)]
    for ident, label, kind, attrs in nodes:
        extra = "".join(f" {k}={quoteattr(v)}" for k, v in attrs.items())
        body.append(f"    <bpmn:{kind} id={quoteattr(ident)} name={quoteattr(label)}{extra}>")
        for flow_id, _source, target in flows:
            if target == ident:
                body.append(f"      <bpmn:incoming>{flow_id}</bpmn:incoming>")
        for flow_id, source, _target in flows:
            if source == ident:
                body.append(f"      <bpmn:outgoing>{flow_id}</bpmn:outgoing>")
        body.append(f"    </bpmn:{kind}>")
    for flow_id, source, target in flows:
        body.append(
            f'    <bpmn:sequenceFlow id="{flow_id}" sourceRef="{source}" targetRef="{target}" />'
        )
    body.append("  </bpmn:process>")
    body.append('  <bpmndi:BPMNDiagram id="BPMNDiagram_1">')
    body.append(f'    <bpmndi:BPMNPlane id="BPMNPlane_1" bpmnElement="{key}">')
    x = 150
    centres = {}
    for ident, _label, kind, _attrs in nodes:
        width, height = (36, 36) if kind.endswith("Event") else (100, 80)
        y = 120 - height // 2
        centres[ident] = (x, x + width)
        body.append(
            f'      <bpmndi:BPMNShape id="{ident}_di" bpmnElement="{ident}">'
            f'<dc:Bounds x="{x}" y="{y}" width="{width}" height="{height}" />'
            "</bpmndi:BPMNShape>"
        )
        x += width + 60
    for flow_id, source, target in flows:
        body.append(
            f'      <bpmndi:BPMNEdge id="{flow_id}_di" bpmnElement="{flow_id}">'
            f'<di:waypoint x="{centres[source][1]}" y="120" />'
            f'<di:waypoint x="{centres[target][0]}" y="120" /></bpmndi:BPMNEdge>'
        )
    body.append("    </bpmndi:BPMNPlane>")
    body.append("  </bpmndi:BPMNDiagram>")
    body.append("</bpmn:definitions>\n")
    return HEADER.format(key=key) + "\n".join(body)


def deploy_circuit(xml: str, actor=None, filename: str = "circuit.bpmn"):
    """Deploy one BPMN text through the engine; returns the Deployed result of its process."""
    from app.engine.services import deploy

    results = deploy([(filename, xml.encode())], actor)
    return next(r for r in results if r.kind == "process")


def decision_table(key: str = "orientation") -> str:
    """A small DMN decision table (postal code -> delegation), as Camunda Modeler writes it."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="Definitions_{key}"
    name="Orientation" namespace="http://camunda.org/schema/1.0/dmn">
  <decision id="{key}" name="Orientation par code postal">
    <decisionTable id="DecisionTable_1" hitPolicy="FIRST">
      <input id="Input_1" label="Code postal">
        <inputExpression id="InputExpression_1" typeRef="string"><text>code_postal</text>
        </inputExpression>
      </input>
      <output id="Output_1" label="Délégation" name="delegation" typeRef="string" />
      <rule id="Rule_1">
        <inputEntry id="UnaryTests_1"><text>"44000","44100"</text></inputEntry>
        <outputEntry id="LiteralExpression_1"><text>"delegation-nantes"</text></outputEntry>
      </rule>
      <rule id="Rule_2">
        <inputEntry id="UnaryTests_2"><text>-</text></inputEntry>
        <outputEntry id="LiteralExpression_2"><text>"courrier-central"</text></outputEntry>
      </rule>
    </decisionTable>
  </decision>
</definitions>
"""
