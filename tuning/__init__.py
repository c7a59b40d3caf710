"""Ray Tune: trainables, sweeps across sensors, MLflow logging of every trial."""
