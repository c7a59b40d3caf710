"""The detection benchmark: per-channel train -> predict -> threshold -> score, and result files."""
