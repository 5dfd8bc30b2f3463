"""qgs sim_hardware package."""
