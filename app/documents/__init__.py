"""Documents: content-addressed file storage and document records."""
