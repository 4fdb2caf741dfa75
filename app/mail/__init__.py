"""Functional mailboxes: IMAP polling, message parsing, registration of e-mails."""
