"""Use cases: one short handler per command, the ports they need, and settings."""
