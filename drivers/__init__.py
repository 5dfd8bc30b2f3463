"""qgs drivers package."""
