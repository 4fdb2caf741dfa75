// The circuit studio of Missive: the bpmn-js modeler (Camunda properties panel, bpmnlint,
// Missive pickers), the dmn-js modeler, and the read-only diagrams of the versions pages
// (visual diff, heatmap, instance path). Bundled by scripts/vendor.sh with esbuild into
// app/static/vendor/studio/; each page says what it needs with a root element and a JSON
// <script type="application/json" id="studio-config"> block (no inline script: CSP).
import BpmnModeler from 'bpmn-js/lib/Modeler';
import NavigatedViewer from 'bpmn-js/lib/NavigatedViewer';
import DmnModeler from 'dmn-js/lib/Modeler';
import {
  BpmnPropertiesPanelModule,
  BpmnPropertiesProviderModule,
  CamundaPlatformPropertiesProviderModule,
  useService
} from 'bpmn-js-properties-panel';
import CamundaBehaviorsModule from 'camunda-bpmn-js-behaviors/lib/camunda-platform';
import camundaModdle from 'camunda-bpmn-moddle/resources/camunda.json';
import camundaDmnModdle from 'camunda-dmn-moddle/resources/camunda.json';
import lintModule from 'bpmn-js-bpmnlint';
import { SelectEntry, isSelectEntryEdited } from '@bpmn-io/properties-panel';
import { h } from '@bpmn-io/properties-panel/preact';
import { lintConfig } from './lint-config.js';
import { FrenchTranslateModule } from './translate-fr.js';

const CAMUNDA_NS = 'camunda';

function readConfig() {
  const node = document.getElementById('studio-config');
  return node ? JSON.parse(node.textContent) : {};
}

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.getAttribute('content') : '';
}

async function callJson(url, method, body) {
  const response = await fetch(url, {
    method,
    credentials: 'same-origin',
    headers: {
      'Content-Type': 'application/json',
      'Accept': 'application/json',
      'X-CSRFToken': csrfToken()
    },
    body: body === undefined ? undefined : JSON.stringify(body)
  });
  let payload = {};
  try {
    payload = await response.json();
  } catch (error) {
    payload = { detail: 'Réponse illisible du serveur (' + response.status + ').' };
  }
  return { status: response.status, ok: response.ok, payload };
}

function setText(id, text, kind) {
  const node = document.getElementById(id);
  if (!node) {
    return;
  }
  node.textContent = text;
  if (kind) {
    node.dataset.kind = kind;
  }
}

function debounce(fn, delay) {
  let timer = null;
  const wrapped = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), delay);
  };
  wrapped.flush = (...args) => {
    clearTimeout(timer);
    return fn(...args);
  };
  wrapped.cancel = () => clearTimeout(timer);
  return wrapped;
}

function timeNow() {
  return new Date().toLocaleTimeString('fr-FR', { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

// --- Missive pickers in the properties panel --------------------------------------------

function is(element, type) {
  const bo = element && element.businessObject;
  return !!bo && typeof bo.$instanceOf === 'function' && bo.$instanceOf(type);
}

function FormKeyEntry(props) {
  const { element, id, options } = props;
  const modeling = useService('modeling');
  const translate = useService('translate');
  return h(SelectEntry, {
    element,
    id,
    label: translate('Formulaire (forms/)'),
    description: translate('Le formulaire JSON que l’agent remplit pour cette tâche.'),
    getValue: () => element.businessObject.get(CAMUNDA_NS + ':formKey') || '',
    setValue: (value) => modeling.updateProperties(element, { [CAMUNDA_NS + ':formKey']: value || undefined }),
    getOptions: () => [{ value: '', label: '— aucun —' }].concat(
      options.formKeys.map((key) => ({ value: key, label: key })))
  });
}

function HandlerEntry(props) {
  const { element, id, options } = props;
  const modeling = useService('modeling');
  const translate = useService('translate');
  return h(SelectEntry, {
    element,
    id,
    label: translate('Gestionnaire Missive'),
    description: translate('L’action automatique que Missive exécute à cette étape.'),
    getValue: () => element.businessObject.get(CAMUNDA_NS + ':topic') || '',
    setValue: (value) => modeling.updateProperties(element, value ? {
      [CAMUNDA_NS + ':type']: 'external',
      [CAMUNDA_NS + ':topic']: value
    } : { [CAMUNDA_NS + ':type']: undefined, [CAMUNDA_NS + ':topic']: undefined }),
    getOptions: () => [{ value: '', label: '— aucun —' }].concat(
      options.handlers.map((name) => ({ value: name, label: name })))
  });
}

function CandidateGroupEntry(props) {
  const { element, id, options } = props;
  const modeling = useService('modeling');
  const translate = useService('translate');
  return h(SelectEntry, {
    element,
    id,
    label: translate('Ajouter un groupe candidat'),
    description: translate('Choisissez un groupe fonctionnel : il s’ajoute aux groupes candidats.'),
    getValue: () => '',
    setValue: (value) => {
      if (!value) {
        return;
      }
      const current = (element.businessObject.get(CAMUNDA_NS + ':candidateGroups') || '')
        .split(',').map((item) => item.trim()).filter(Boolean);
      if (!current.includes(value)) {
        current.push(value);
      }
      modeling.updateProperties(element, { [CAMUNDA_NS + ':candidateGroups']: current.join(',') });
    },
    getOptions: () => [{ value: '', label: '— choisir —' }].concat(
      options.groups.map((group) => ({ value: group.name, label: group.label + ' (' + group.name + ')' })))
  });
}

function MissivePropertiesProvider(propertiesPanel, injector) {
  const options = injector.get('config.missive', false) || { formKeys: [], handlers: [], groups: [] };
  this.getGroups = function(element) {
    return function(groups) {
      const entries = [];
      if (is(element, 'bpmn:UserTask')) {
        entries.push({ id: 'missive-form-key', component: FormKeyEntry, options, isEdited: isSelectEntryEdited });
        entries.push({ id: 'missive-candidate-group', component: CandidateGroupEntry, options, isEdited: isSelectEntryEdited });
      }
      if (is(element, 'bpmn:ServiceTask')) {
        entries.push({ id: 'missive-handler', component: HandlerEntry, options, isEdited: isSelectEntryEdited });
      }
      if (entries.length) {
        groups.splice(1, 0, { id: 'missive', label: 'Missive', entries });
      }
      return groups;
    };
  };
  propertiesPanel.registerProvider(400, this);
}
MissivePropertiesProvider.$inject = ['propertiesPanel', 'injector'];

const MissivePropertiesModule = {
  __init__: ['missivePropertiesProvider'],
  missivePropertiesProvider: ['type', MissivePropertiesProvider]
};

// --- server problems drawn on the diagram --------------------------------------------------

function drawProblems(modeler, problems, listId) {
  const overlays = modeler.get('overlays');
  const canvas = modeler.get('canvas');
  const registry = modeler.get('elementRegistry');
  overlays.remove({ type: 'missive-problem' });
  registry.getAll().forEach((element) => canvas.removeMarker(element, 'missive-error'));
  const list = document.getElementById(listId);
  if (list) {
    list.innerHTML = '';
  }
  (problems || []).forEach((problem, index) => {
    const element = problem.element_id ? registry.get(problem.element_id) : null;
    if (element && element.type !== 'label') {
      canvas.addMarker(element, 'missive-error');
      const badge = document.createElement('div');
      badge.className = 'missive-problem-badge';
      badge.textContent = '!';
      badge.title = problem.message;
      badge.setAttribute('aria-hidden', 'true');
      if (!element.waypoints) {
        overlays.add(element, 'missive-problem', { position: { top: -12, right: 12 }, html: badge });
      }
    }
    if (list) {
      const item = document.createElement('li');
      item.className = 'studio-problem';
      item.dataset.elementId = problem.element_id || '';
      const text = document.createElement('span');
      text.textContent = problem.message;
      item.appendChild(text);
      if (element) {
        const button = document.createElement('button');
        button.type = 'button';
        button.className = 'button button--small';
        button.textContent = 'Voir l’élément';
        button.addEventListener('click', () => {
          modeler.get('selection').select(element);
          canvas.scrollToElement(element);
        });
        item.appendChild(button);
      }
      list.appendChild(item);
    }
  });
}

// --- draft editing shared by the BPMN and DMN pages ----------------------------------------

class DraftSession {
  constructor(config, getXml, onProblems) {
    this.config = config;
    this.getXml = getXml;
    this.onProblems = onProblems;
    this.revision = config.revision;
    this.blocked = false;
    this.dirty = false;
    this.saving = null;
    this.autosave = debounce(() => this.save(), config.autosaveDelay || 1500);
  }

  changed() {
    if (this.blocked) {
      return;
    }
    this.dirty = true;
    setText('studio-save-status', 'Modifications non enregistrées…', 'pending');
    this.autosave();
  }

  async save() {
    if (this.blocked) {
      return false;
    }
    if (this.saving) {
      await this.saving;
    }
    this.saving = this._save();
    try {
      return await this.saving;
    } finally {
      this.saving = null;
    }
  }

  async _save() {
    const xml = await this.getXml();
    setText('studio-save-status', 'Enregistrement…', 'pending');
    const result = await callJson(this.config.urls.save, 'PUT', { source: xml, revision: this.revision });
    if (result.status === 409) {
      this.blocked = true;
      this.autosave.cancel();
      setText('studio-save-status', 'Brouillon non enregistré : conflit.', 'error');
      const box = document.getElementById('studio-conflict');
      if (box) {
        box.hidden = false;
        setText('studio-conflict-message', result.payload.detail);
        box.focus();
      }
      return false;
    }
    if (!result.ok) {
      setText('studio-save-status', result.payload.detail || 'Enregistrement impossible.', 'error');
      return false;
    }
    this.revision = result.payload.revision;
    this.dirty = false;
    setText('studio-save-status', 'Brouillon enregistré à ' + timeNow() + ' (révision ' + this.revision + ').', 'ok');
    this.onProblems(result.payload.problems, result.payload.warnings);
    return true;
  }

  async validate() {
    await this.autosave.flush();
    const result = await callJson(this.config.urls.validate, 'POST', { revision: this.revision });
    if (result.ok) {
      this.onProblems(result.payload.problems, result.payload.warnings);
      setText('studio-validation-status', result.payload.problems.length
        ? result.payload.problems.length + ' problème(s) bloquent la publication.'
        : 'Le circuit est valide : il peut être publié.', result.payload.problems.length ? 'error' : 'ok');
    } else {
      setText('studio-validation-status', result.payload.detail, 'error');
    }
    return result;
  }

  async publish(versionTag) {
    if (this.dirty || this.saving) {
      const saved = await this.autosave.flush();
      if (saved === false) {
        return;
      }
    }
    setText('studio-publish-status', 'Publication…', 'pending');
    const result = await callJson(this.config.urls.publish, 'POST', { revision: this.revision, version_tag: versionTag || null });
    if (result.ok) {
      setText('studio-publish-status', result.payload.message, result.payload.created ? 'ok' : 'info');
      if (result.payload.revision) {
        this.revision = result.payload.revision;
      }
      this.onProblems([], result.payload.warnings || []);
      const link = document.getElementById('studio-versions-link');
      if (link) {
        link.hidden = false;
      }
    } else {
      setText('studio-publish-status', result.payload.detail, 'error');
      if (result.payload.errors) {
        this.onProblems(result.payload.errors, []);
      }
    }
  }

  async reloadFromServer(importXml) {
    const result = await callJson(this.config.urls.load, 'GET');
    if (!result.ok) {
      setText('studio-save-status', result.payload.detail, 'error');
      return;
    }
    this.revision = result.payload.revision;
    this.blocked = false;
    this.dirty = false;
    await importXml(result.payload.source);
    const box = document.getElementById('studio-conflict');
    if (box) {
      box.hidden = true;
    }
    setText('studio-save-status', 'Version du serveur rechargée (révision ' + this.revision + ').', 'ok');
  }
}

function downloadText(text, filename) {
  const blob = new Blob([text], { type: 'application/xml' });
  const link = document.createElement('a');
  link.href = URL.createObjectURL(blob);
  link.download = filename;
  document.body.appendChild(link);
  link.click();
  link.remove();
}

function wireToolbar(session, importXml, getXml, filename) {
  const on = (id, handler) => {
    const node = document.getElementById(id);
    if (node) {
      node.addEventListener('click', handler);
    }
  };
  on('studio-save', () => session.autosave.flush());
  on('studio-validate', () => session.validate());
  on('studio-reload', () => session.reloadFromServer(importXml));
  on('studio-keep-mine', async () => downloadText(await getXml(), filename));
  const form = document.getElementById('studio-publish-form');
  if (form) {
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const tag = form.querySelector('[name="version_tag"]');
      session.publish(tag ? tag.value.trim() : '');
    });
  }
  window.addEventListener('beforeunload', (event) => {
    if (session.dirty && !session.blocked) {
      session.autosave.flush();
      event.preventDefault();
      event.returnValue = '';
    }
  });
}

async function openBpmnModeler(root, config) {
  const modeler = new BpmnModeler({
    container: root,
    propertiesPanel: { parent: '#studio-properties' },
    additionalModules: [
      BpmnPropertiesPanelModule,
      BpmnPropertiesProviderModule,
      CamundaPlatformPropertiesProviderModule,
      CamundaBehaviorsModule,
      MissivePropertiesModule,
      lintModule,
      FrenchTranslateModule
    ],
    moddleExtensions: { camunda: camundaModdle },
    linting: { bpmnlint: lintConfig, active: true },
    missive: config.options
  });
  let serverProblems = [];
  const showProblems = (problems, warnings) => {
    serverProblems = problems || [];
    drawProblems(modeler, serverProblems.concat(warnings || []), 'studio-problems');
    setText('studio-problem-count', serverProblems.length
      ? serverProblems.length + ' problème(s) signalé(s) par la validation du serveur.'
      : 'Aucun problème signalé par la validation du serveur.', serverProblems.length ? 'error' : 'ok');
  };
  const importXml = async (xml) => {
    const { warnings } = await modeler.importXML(xml);
    modeler.get('canvas').zoom('fit-viewport', 'auto');
    drawProblems(modeler, serverProblems, 'studio-problems');
    return warnings;
  };
  const getXml = async () => (await modeler.saveXML({ format: true })).xml;
  const session = new DraftSession(config, getXml, showProblems);
  const loaded = await callJson(config.urls.load, 'GET');
  if (!loaded.ok) {
    setText('studio-save-status', loaded.payload.detail, 'error');
    return null;
  }
  session.revision = loaded.payload.revision;
  try {
    await importXml(loaded.payload.source);
  } catch (error) {
    setText('studio-save-status', 'Le diagramme n’a pas pu être affiché : ' + error.message, 'error');
    return null;
  }
  showProblems(loaded.payload.problems, loaded.payload.warnings);
  setText('studio-save-status', 'Brouillon chargé (révision ' + session.revision + ').', 'ok');
  modeler.on('commandStack.changed', () => session.changed());
  wireToolbar(session, importXml, getXml, config.filename);
  root.dataset.ready = 'true';
  window.missiveStudio = { modeler, session };
  return modeler;
}

async function openDmnModeler(root, config) {
  const modeler = new DmnModeler({
    container: root,
    common: { keyboard: { bindTo: window } },
    moddleExtensions: { camunda: camundaDmnModdle }
  });
  const getXml = async () => (await modeler.saveXML({ format: true })).xml;
  const list = (problems) => {
    const node = document.getElementById('studio-problems');
    if (!node) {
      return;
    }
    node.innerHTML = '';
    (problems || []).forEach((problem) => {
      const item = document.createElement('li');
      item.className = 'studio-problem';
      item.textContent = (problem.element_id ? problem.element_id + ' : ' : '') + problem.message;
      node.appendChild(item);
    });
  };
  const session = new DraftSession(config, getXml, (problems, warnings) => list((problems || []).concat(warnings || [])));
  const listen = () => {
    const viewer = modeler.getActiveViewer();
    if (viewer) {
      viewer.get('eventBus').on('elements.changed', () => session.changed());
    }
  };
  modeler.on('views.changed', listen);
  const importXml = async (xml) => {
    await modeler.importXML(xml);
    listen();
  };
  const loaded = await callJson(config.urls.load, 'GET');
  if (!loaded.ok) {
    setText('studio-save-status', loaded.payload.detail, 'error');
    return null;
  }
  session.revision = loaded.payload.revision;
  await importXml(loaded.payload.source);
  list(loaded.payload.problems);
  setText('studio-save-status', 'Brouillon chargé (révision ' + session.revision + ').', 'ok');
  wireToolbar(session, importXml, getXml, config.filename);
  root.dataset.ready = 'true';
  window.missiveStudio = { modeler, session };
  return modeler;
}

// --- read-only diagrams: diff, heatmap, instance path --------------------------------------

async function viewer(container, xml) {
  const instance = new NavigatedViewer({ container, additionalModules: [FrenchTranslateModule] });
  await instance.importXML(xml);
  instance.get('canvas').zoom('fit-viewport', 'auto');
  return instance;
}

function mark(instance, ids, marker) {
  const registry = instance.get('elementRegistry');
  const canvas = instance.get('canvas');
  const root = canvas.getRootElement();
  (ids || []).forEach((id) => {
    const element = registry.get(id);
    // The process or collaboration is the canvas itself: its changes are listed, not drawn.
    if (element && element !== root && element.type !== 'label') {
      canvas.addMarker(element, marker);
    }
  });
}

async function openDiff(root, config) {
  const left = await viewer(document.getElementById('diff-old'), config.old_source);
  const right = await viewer(document.getElementById('diff-new'), config.new_source);
  const diff = config.diff;
  mark(left, diff.removed.map((item) => item.id), 'diff-removed');
  mark(right, diff.added.map((item) => item.id), 'diff-added');
  const changedIds = diff.changed.map((item) => item.id);
  mark(left, changedIds, 'diff-changed');
  mark(right, changedIds, 'diff-changed');
  mark(left, diff.moved, 'diff-moved');
  mark(right, diff.moved, 'diff-moved');
  document.querySelectorAll('[data-diff-element]').forEach((row) => {
    row.addEventListener('click', () => {
      const id = row.dataset.diffElement;
      [left, right].forEach((instance) => {
        const element = instance.get('elementRegistry').get(id);
        if (element) {
          instance.get('canvas').scrollToElement(element);
        }
      });
    });
  });
  root.dataset.ready = 'true';
}

function formatDuration(seconds) {
  if (seconds === null || seconds === undefined) {
    return '—';
  }
  const hours = seconds / 3600;
  if (hours < 1) {
    return Math.max(1, Math.round(seconds / 60)) + ' min';
  }
  if (hours < 48) {
    return Math.round(hours) + ' h';
  }
  return Math.round(hours / 24) + ' j';
}

async function openHeatmap(root, config) {
  const instance = await viewer(root, config.source);
  const overlays = instance.get('overlays');
  const registry = instance.get('elementRegistry');
  const loads = config.loads || {};
  const max = Math.max(1, ...Object.values(loads).map((load) => load.waiting));
  Object.values(loads).forEach((load) => {
    if (!registry.get(load.element_id)) {
      return;
    }
    const level = load.waiting ? Math.min(5, Math.ceil((load.waiting / max) * 5)) : 0;
    instance.get('canvas').addMarker(load.element_id, 'heat-' + level);
    const badge = document.createElement('div');
    badge.className = 'heat-badge heat-badge--' + level;
    badge.textContent = load.waiting + ' en attente · ' + formatDuration(load.mean_wait_seconds);
    badge.title = load.waiting + ' instance(s) en attente, attente moyenne ' +
      formatDuration(load.mean_wait_seconds) + ' ; ' + load.completed + ' traitée(s), durée moyenne ' +
      formatDuration(load.mean_duration_seconds);
    overlays.add(load.element_id, 'missive-heat', { position: { bottom: -6, left: 0 }, html: badge });
  });
  root.dataset.ready = 'true';
}

async function openInstancePath(root, config) {
  const instance = await viewer(root, config.source);
  const path = config.path;
  mark(instance, Object.keys(path.completed), 'path-done');
  mark(instance, path.active, 'path-active');
  mark(instance, config.flow_ids, 'path-flow');
  mark(instance, config.incident_elements, 'path-incident');
  root.dataset.ready = 'true';
}

function start() {
  const config = readConfig();
  const pages = [
    ['bpmn-modeler', openBpmnModeler],
    ['dmn-modeler', openDmnModeler],
    ['bpmn-diff', openDiff],
    ['bpmn-heatmap', openHeatmap],
    ['bpmn-instance', openInstancePath]
  ];
  pages.forEach(([id, open]) => {
    const root = document.getElementById(id);
    if (root) {
      open(root, config).catch((error) => {
        root.dataset.error = error.message;
        setText('studio-save-status', 'Erreur : ' + error.message, 'error');
      });
    }
  });
}

if (document.readyState === 'loading') {
  document.addEventListener('DOMContentLoaded', start);
} else {
  start();
}
