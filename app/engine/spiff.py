"""SpiffWorkflow glue: the Camunda-dialect parser, the sandboxed script engine, the serializer.

Nothing outside ``app.engine`` imports this module.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from typing import Any

from SpiffWorkflow.bpmn import BpmnEvent
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.parser.BpmnParser import full_tag
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.config import (
    MessageEventDefinition as BpmnMessageEventDefinition,
)
from SpiffWorkflow.bpmn.serializer.config import (
    MessageEventDefinitionConverter as BpmnMessageEventDefinitionConverter,
)
from SpiffWorkflow.bpmn.serializer.default.task_spec import MultiInstanceTaskConverter
from SpiffWorkflow.bpmn.serializer.default.workflow import (
    BpmnWorkflowConverter,
    WorkflowConverter,
)
from SpiffWorkflow.bpmn.serializer.helpers.spec import TaskSpecConverter
from SpiffWorkflow.bpmn.specs.defaults import ServiceTask
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.camunda.parser import CamundaParser
from SpiffWorkflow.camunda.parser.task_spec import CAMUNDA_MODEL_NS, CamundaTaskParser
from SpiffWorkflow.camunda.serializer import DEFAULT_CONFIG as CAMUNDA_CONFIG
from SpiffWorkflow.camunda.specs.business_rule_task import BusinessRuleTask
from SpiffWorkflow.camunda.specs.multiinstance_task import (
    ParallelMultiInstanceTask,
    SequentialMultiInstanceTask,
)
from SpiffWorkflow.camunda.specs.user_task import UserTask
from SpiffWorkflow.dmn.engine.DMNEngine import DMNEngine
from SpiffWorkflow.dmn.serializer.task_spec import BaseBusinessRuleTaskConverter
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.util.deep_merge import DeepMerge
from SpiffWorkflow.util.task import TaskState

from app.engine import sandbox

__all__ = ["BpmnEvent", "BpmnWorkflow", "SpiffWorkflowException", "TaskState", "UserTask"]

CAMUNDA = "{" + CAMUNDA_MODEL_NS + "}"
ASSIGNMENT_ATTRIBUTES = {
    "candidateGroups": "candidate_groups",
    "candidateUsers": "candidate_users",
    "assignee": "assignee",
    "dueDate": "due_date",
    "followUpDate": "follow_up_date",
    "priority": "priority",
    "formKey": "form_key",
}


def handler_name(node) -> str | None:
    """The service handler a serviceTask names: external topic, delegate or property."""
    topic = node.get(CAMUNDA + "topic")
    if topic:
        return topic.strip()
    for attribute in ("delegateExpression", "expression", "class"):
        value = (node.get(CAMUNDA + attribute) or "").strip()
        if value:
            if sandbox.is_camunda_expression(value):
                value = value.strip()[2:-1].strip()
            return value
    for prop in node.iterfind(f".//{CAMUNDA}property"):
        if prop.get("name") == "handler" and prop.get("value"):
            return prop.get("value").strip()
    return None


class _ProcessVariables:
    """Camunda 7 semantics for multi-instance activities.

    In Camunda, what a person enters when completing one instance (a visa's ``decision``)
    becomes a process variable that the gateway after the loop can test; SpiffWorkflow's
    Camunda variant only copies the element variable back into the collection. Here the
    other variables of each finished instance are merged into the activity's data too.
    """

    def merge_child(self, workflow, child):
        local = {
            ref.bpmn_id
            for ref in (self.input_item, self.output_item, self.data_input, self.data_output)
            if ref is not None
        }
        DeepMerge.merge(child.parent.data, {k: v for k, v in child.data.items() if k not in local})
        super().merge_child(workflow, child)


class MissiveSequentialMultiInstanceTask(_ProcessVariables, SequentialMultiInstanceTask):
    pass


class MissiveParallelMultiInstanceTask(_ProcessVariables, ParallelMultiInstanceTask):
    pass


_MULTI_INSTANCE = {
    SequentialMultiInstanceTask: MissiveSequentialMultiInstanceTask,
    ParallelMultiInstanceTask: MissiveParallelMultiInstanceTask,
}


class _StructuredExtensions:
    """Task extensions as ``{"properties": {...}, <camunda attributes>...}``."""

    def _add_multiinstance_task(self, loop_characteristics):
        super()._add_multiinstance_task(loop_characteristics)
        # Same attributes, one more behaviour (see _ProcessVariables).
        self.task.__class__ = _MULTI_INSTANCE.get(type(self.task), type(self.task))

    def parse_extensions(self, node=None):
        properties = {}
        for prop in self.xpath(".//bpmn:extensionElements/camunda:properties/camunda:property"):
            properties[prop.get("name")] = prop.get("value")
        extensions: dict[str, Any] = {"properties": properties}
        for attribute, key in ASSIGNMENT_ATTRIBUTES.items():
            value = self.node.get(CAMUNDA + attribute)
            if value is not None and value.strip():
                extensions[key] = value.strip()
        documentation = self.xpath("./bpmn:documentation")
        if documentation and documentation[0].text:
            extensions["documentation"] = documentation[0].text.strip()
        return extensions


class HandlerServiceTask(ServiceTask):
    """A serviceTask that calls a Python handler registered under ``handler``.

    It is ``manual`` for SpiffWorkflow: the engine runs it itself, in its own
    transaction, so a failing handler never loses the step before it.
    """

    def __init__(self, wf_spec, bpmn_id, handler: str | None = None, **kwargs):
        super().__init__(wf_spec, bpmn_id, **kwargs)
        self.handler = handler
        self.manual = True

    def _run_hook(self, my_task):
        my_task.workflow.script_engine.call_handler(my_task, self.handler)
        return True


class HandlerServiceTaskConverter(TaskSpecConverter):
    def to_dict(self, spec):
        dct = self.get_default_attributes(spec)
        dct["handler"] = spec.handler
        return dct

    def from_dict(self, dct):
        return self.task_spec_from_dict(dct)


class _ServiceTaskParser(_StructuredExtensions, CamundaTaskParser):
    def create_task(self):
        return self.spec_class(
            self.spec, self.bpmn_id, handler=handler_name(self.node), **self.bpmn_attributes
        )


def _structured(parser_class: type) -> type:
    return type(f"Missive{parser_class.__name__}", (_StructuredExtensions, parser_class), {})


class MissiveParser(CamundaParser):
    """CamundaParser that also reads assignment attributes and named service handlers."""

    OVERRIDE_PARSER_CLASSES = {
        tag: (
            (_structured(parser), spec) if issubclass(parser, CamundaTaskParser) else (parser, spec)
        )
        for tag, (parser, spec) in CamundaParser.OVERRIDE_PARSER_CLASSES.items()
    }
    OVERRIDE_PARSER_CLASSES[full_tag("serviceTask")] = (_ServiceTaskParser, HandlerServiceTask)


class SandboxEnvironment(BasePythonScriptEngineEnvironment):
    """Every expression and script of a workflow runs in ``app.engine.sandbox``."""

    def evaluate(self, expression, context, external_context=None):
        return sandbox.evaluate(expression, context, external_context)

    def execute(self, script, context, external_context=None):
        sandbox.execute(script, context, external_context)
        return True


HandlerCaller = Callable[[Any, str], None]


class MissiveScriptEngine(PythonScriptEngine):
    """Script engine bound to the sandbox and to the service handler registry."""

    def __init__(self, call_handler: HandlerCaller | None = None):
        super().__init__(environment=SandboxEnvironment())
        self._call_handler = call_handler

    def validate(self, expression):
        # SyntaxError must escape as is: the DMN engine relies on it to spot "> 5".
        tree = ast.parse(expression)
        sandbox._check_tree(tree)

    def call_handler(self, task, handler: str) -> None:
        if self._call_handler is None:
            raise RuntimeError("no service handler runner configured")
        self._call_handler(task, handler)


class StrictDMNEngine(DMNEngine):
    """Decision tables with the hit policies as DMN defines them.

    SpiffWorkflow treats UNIQUE as FIRST (the first matching rule wins silently); here
    UNIQUE refuses an ambiguous table, FIRST takes the first match in rule order and
    COLLECT returns every match as lists.
    """

    def decide(self, task):
        return [
            rule for rule in self.decision_table.rules if self._DMNEngine__check_rule(rule, task)
        ]

    def result(self, task):
        policy = (self.decision_table.hit_policy or "UNIQUE").upper()
        matched = self.decide(task)
        if policy == "COLLECT":
            result: dict = {}
            for rule in matched:
                for key, value in rule.output_as_dict(task).items():
                    result.setdefault(key, []).append(value)
            return result
        if policy == "UNIQUE" and len(matched) > 1:
            rows = ", ".join(str(rule.row_number) for rule in matched)
            raise WorkflowTaskException(
                f"Table de décision « {self.decision_table.name or self.decision_table.id} » "
                f"(UNIQUE) : plusieurs règles s'appliquent (lignes {rows}).",
                task=task,
            )
        return matched[0].output_as_dict(task) if matched else {}


class StrictBusinessRuleTaskConverter(BaseBusinessRuleTaskConverter):
    def from_dict(self, dct):
        table = self.decision_table_from_dict(dct.pop("decision_table"))
        dct["dmnEngine"] = StrictDMNEngine(table)
        return self.task_spec_from_dict(dct)


class SpeclessWorkflowConverter(BpmnWorkflowConverter):
    """Instance state without the specs: they are stored once per version, and the
    workflow is always restored with the version's (cached) spec objects."""

    def to_dict(self, workflow):
        dct = WorkflowConverter.to_dict(self, workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct


def _serializer() -> BpmnWorkflowSerializer:
    config = dict(CAMUNDA_CONFIG)
    config[HandlerServiceTask] = HandlerServiceTaskConverter
    config[BusinessRuleTask] = StrictBusinessRuleTaskConverter
    config[BpmnWorkflow] = SpeclessWorkflowConverter
    for task_class in _MULTI_INSTANCE.values():
        config[task_class] = MultiInstanceTaskConverter
    # CAMUNDA_CONFIG drops the default message definition, yet receiveTask/sendTask still
    # create it under CamundaParser: without this they cannot be serialized.
    config[BpmnMessageEventDefinition] = BpmnMessageEventDefinitionConverter
    return BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(config))


SERIALIZER = _serializer()


def spec_to_json(spec, subprocess_specs: dict) -> str:
    """Serialize a process spec and the specs it calls, once per definition version."""
    return json.dumps(
        {
            "spec": SERIALIZER.to_dict(spec),
            "subprocess_specs": {
                name: SERIALIZER.to_dict(s) for name, s in subprocess_specs.items()
            },
        }
    )


def specs_from_json(text: str) -> tuple[Any, dict]:
    """Restore the spec objects of a definition version."""
    bundle = json.loads(text)
    spec = SERIALIZER.from_dict(bundle["spec"])
    subprocess_specs = {
        name: SERIALIZER.from_dict(s) for name, s in bundle["subprocess_specs"].items()
    }
    return spec, subprocess_specs


def workflow_state(workflow: BpmnWorkflow) -> str:
    """Serialize an instance's state without its specs (those live on the version)."""
    SERIALIZER.registry._encoder_mode = True
    try:
        dct = SERIALIZER.to_dict(workflow)
    finally:
        SERIALIZER.registry._encoder_mode = False
    dct[SERIALIZER.VERSION_KEY] = SERIALIZER.VERSION
    return json.dumps(dct, cls=SERIALIZER._encoder_cls)


def restore_workflow(
    state: str, spec, subprocess_specs: dict, script_engine: MissiveScriptEngine
) -> BpmnWorkflow:
    """Rebuild a workflow from its stored state and its version's (shared) spec objects."""
    dct = json.loads(state, cls=SERIALIZER.json_decoder_cls)
    SERIALIZER.migrate(dct)
    dct["spec"] = spec
    dct["subprocess_specs"] = dict(subprocess_specs)
    workflow = SERIALIZER.from_dict(dct)
    workflow.script_engine = script_engine
    return workflow


def new_workflow(spec, subprocess_specs: dict, script_engine: MissiveScriptEngine) -> BpmnWorkflow:
    """Create a fresh workflow for a spec."""
    return BpmnWorkflow(spec, subprocess_specs, script_engine=script_engine)
