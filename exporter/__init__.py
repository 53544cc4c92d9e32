"""amiplus-exporter: TAURON AMIplus wireless M-Bus meters to Prometheus and InfluxDB."""

__version__ = "0.2.0"
