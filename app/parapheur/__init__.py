"""Parapheur: folders of documents that go through visa and PAdES signature circuits."""
