"""Motorized polarization optics: Elliptec and SMC100 rotators, the compensation analyzer."""
