"""Ray Serve: the HTTP API, per-sensor model multiplexing and the dashboard."""
