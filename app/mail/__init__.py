"""Mail: outgoing messages (and, with the intake domain, functional mailboxes)."""
