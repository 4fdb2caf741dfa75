"""Mail: functional mailboxes (IMAP polling, parsing, registration) and outgoing messages."""
