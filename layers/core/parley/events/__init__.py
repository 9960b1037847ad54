"""Parley's events: what a committed change means (mapping) and the bus they go on (bus)."""
