"""The agent's inbox."""
