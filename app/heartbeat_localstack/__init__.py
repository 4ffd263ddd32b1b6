"""Real Kafka (KRaft) and PostgreSQL as local background processes, without Docker.

`python -m heartbeat_localstack up --dir .stack` starts both and writes ``.stack/env``; the test
fixtures in ``tests/services.py`` use the same classes with state in a temporary folder.
"""
