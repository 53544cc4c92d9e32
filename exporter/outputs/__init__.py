"""Outputs read the state: Prometheus metrics at scrape time, InfluxDB points from a queue."""
