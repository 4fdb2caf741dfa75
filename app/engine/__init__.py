"""The workflow engine: BPMN/DMN definitions run by SpiffWorkflow.

This package is the only one that imports SpiffWorkflow; the rest of Missive talks to
it through ``app.engine.services``.
"""
