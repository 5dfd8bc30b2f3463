"""qgs station package."""
