"""pdm-ray: predictive maintenance for sensor fleets on Ray (Ray-free core library)."""
