"""Observability: what the gateway reports about itself (metrics; tracing and logs to follow)."""
