"""Registry of incoming and outgoing items: cases, chrono numbers, channels, intake."""
