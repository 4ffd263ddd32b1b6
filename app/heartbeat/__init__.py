"""Heart-rate monitoring pipeline: generator -> Kafka -> validating consumer -> PostgreSQL."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("heartbeat")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
