"""Benchmark: class-prompted text-to-image retrieval on CLEVR-DS; protocol, metrics, methods, runs, leaderboard."""
