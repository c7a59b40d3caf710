"""Ray actors: one SensorActor per sensor and the Fleet supervisor (thin: state + data movement)."""
