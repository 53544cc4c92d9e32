"""The HTTP server: metrics, health, the status page and its data."""
