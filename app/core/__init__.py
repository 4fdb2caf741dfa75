"""Cross-cutting pieces: configuration, extensions, errors, permissions, audit, worker."""
