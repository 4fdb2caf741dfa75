// French for the modeler: bpmn-js-i18n's community translation of the palette and menus,
// plus the properties panel labels analysts use every day (Missive's own wording).
import bpmnJsFr from 'bpmn-js-i18n/translations/fr';

const panel = {
  'General': 'Général',
  'Name': 'Nom',
  'ID': 'Identifiant',
  'Documentation': 'Documentation',
  'Element documentation': 'Documentation de l’élément',
  'Process documentation': 'Documentation du processus',
  'Executable': 'Exécutable',
  'Version tag': 'Étiquette de version',
  'User assignment': 'Affectation',
  'Assignee': 'Responsable',
  'Candidate groups': 'Groupes candidats',
  'Candidate users': 'Utilisateurs candidats',
  'Due date': 'Échéance',
  'Follow up date': 'Date de relance',
  'Priority': 'Priorité',
  'Forms': 'Formulaires',
  'Form key': 'Clé de formulaire',
  'Type': 'Type',
  'Condition': 'Condition',
  'Condition type': 'Type de condition',
  'Expression': 'Expression',
  'Script': 'Script',
  'Implementation': 'Implémentation',
  'Topic': 'Sujet (gestionnaire)',
  'Timer': 'Minuterie',
  'Message': 'Message',
  'Extension properties': 'Propriétés d’extension',
  'Inputs': 'Entrées',
  'Outputs': 'Sorties',
  'Execution listeners': 'Écouteurs d’exécution',
  'Task listeners': 'Écouteurs de tâche',
  'Asynchronous continuations': 'Continuations asynchrones',
  'Start initiator': 'Initiateur',
  'Candidate starter': 'Démarrage autorisé pour',
  'Candidate starter groups': 'Groupes autorisés à démarrer',
  'Candidate starter users': 'Utilisateurs autorisés à démarrer',
  'Toggle linting overlays': 'Afficher ou masquer les alertes de modélisation',
  'No Issues': 'Aucune alerte',
  'Multiple elements are selected. Select a single element to edit its properties.':
    'Plusieurs éléments sont sélectionnés : sélectionnez-en un seul pour modifier ses propriétés.',
  'Select an element to edit its properties.': 'Sélectionnez un élément pour modifier ses propriétés.',
  '{errors} Errors, {warnings} Warnings': '{errors} erreur(s), {warnings} avertissement(s)'
};

const dictionary = Object.assign({}, bpmnJsFr, panel);

function translate(template, replacements) {
  const text = dictionary[template] || template;
  return text.replace(/{([^}]+)}/g, (match, key) => (
    replacements && key in replacements ? replacements[key] : match));
}

export const FrenchTranslateModule = { translate: ['value', translate] };
