"""Shared fixtures. Integration fixtures (real Kafka and PostgreSQL) live in tests/services.py."""

pytest_plugins = ["tests.services"]
