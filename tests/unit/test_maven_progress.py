"""Fetching the Kafka jars says what Maven has fetched, one line a file, as it goes."""

from __future__ import annotations

import logging

from heartbeat_localstack.maven import _run_showing_downloads

MAVEN_OUTPUT = r"""
echo '[INFO] Scanning for projects...'
echo '[INFO] Downloading from central: https://r.example/kafka-raft-4.1.1.jar'
echo '[INFO] Downloaded from central: https://r.example/kafka-raft-4.1.1.jar (310 kB at 122 kB/s)'
echo '[INFO] Copying kafka-raft-4.1.1.jar'
exit "$1"
"""


def test_each_fetched_file_is_logged_with_its_size_and_the_rest_is_kept(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="heartbeat_localstack.maven"):
        code, output = _run_showing_downloads(["sh", "-c", MAVEN_OUTPUT, "sh", "0"], tmp_path)
    assert code == 0
    assert [r.getMessage() for r in caplog.records] == [
        "maven: fetched kafka-raft-4.1.1.jar (310 kB at 122 kB/s)"
    ]
    assert output[0] == "[INFO] Scanning for projects..."
    assert output[-1] == "[INFO] Copying kafka-raft-4.1.1.jar"


def test_a_failing_maven_gives_its_exit_code_and_its_output(tmp_path):
    code, output = _run_showing_downloads(["sh", "-c", MAVEN_OUTPUT, "sh", "3"], tmp_path)
    assert code == 3
    assert len(output) == 4
