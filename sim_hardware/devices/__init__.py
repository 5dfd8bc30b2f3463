"""Behaviour models of the emulated devices (no wire protocol inside)."""
