// bpmnlint rules run in the browser while analysts draw (the server runs the deploy checks).
// Errors match what the engine refuses; warnings are modelling advice.
import StaticResolver from 'bpmnlint/lib/resolver/static-resolver';
import adHocSubProcess from 'bpmnlint/rules/ad-hoc-sub-process';
import conditionalFlows from 'bpmnlint/rules/conditional-flows';
import endEventRequired from 'bpmnlint/rules/end-event-required';
import eventBasedGateway from 'bpmnlint/rules/event-based-gateway';
import fakeJoin from 'bpmnlint/rules/fake-join';
import labelRequired from 'bpmnlint/rules/label-required';
import linkEvent from 'bpmnlint/rules/link-event';
import noComplexGateway from 'bpmnlint/rules/no-complex-gateway';
import noDisconnected from 'bpmnlint/rules/no-disconnected';
import noDuplicateSequenceFlows from 'bpmnlint/rules/no-duplicate-sequence-flows';
import noImplicitSplit from 'bpmnlint/rules/no-implicit-split';
import noOverlappingElements from 'bpmnlint/rules/no-overlapping-elements';
import singleBlankStartEvent from 'bpmnlint/rules/single-blank-start-event';
import startEventRequired from 'bpmnlint/rules/start-event-required';
import subProcessBlankStartEvent from 'bpmnlint/rules/sub-process-blank-start-event';
import superfluousGateway from 'bpmnlint/rules/superfluous-gateway';

const rules = {
  'ad-hoc-sub-process': ['error', adHocSubProcess],
  'conditional-flows': ['error', conditionalFlows],
  'end-event-required': ['error', endEventRequired],
  'event-based-gateway': ['error', eventBasedGateway],
  'fake-join': ['warn', fakeJoin],
  'label-required': ['warn', labelRequired],
  'link-event': ['error', linkEvent],
  'no-complex-gateway': ['error', noComplexGateway],
  'no-disconnected': ['error', noDisconnected],
  'no-duplicate-sequence-flows': ['error', noDuplicateSequenceFlows],
  'no-implicit-split': ['error', noImplicitSplit],
  'no-overlapping-elements': ['warn', noOverlappingElements],
  'single-blank-start-event': ['warn', singleBlankStartEvent],
  'start-event-required': ['error', startEventRequired],
  'sub-process-blank-start-event': ['error', subProcessBlankStartEvent],
  'superfluous-gateway': ['warn', superfluousGateway]
};

const cache = {};
const config = { rules: {} };
Object.entries(rules).forEach(([name, [level, rule]]) => {
  cache['rule:bpmnlint/' + name] = rule;
  config.rules[name] = level;
});

export const lintConfig = { config, resolver: new StaticResolver(cache) };
