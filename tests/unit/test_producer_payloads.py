"""The producer's payloads are byte for byte what the generator's readings say."""

from datetime import UTC, datetime, timedelta

from heartbeat.generator import ReadingGenerator
from heartbeat.producer import Payloads


def test_keys_and_values_are_those_of_key_and_to_json():
    generator = ReadingGenerator(customers=50, seed=7, invalid_rate=0.2)
    stream = generator.rounds(start=datetime(2026, 1, 1, tzinfo=UTC), step=timedelta(seconds=1))
    payloads = Payloads()
    for _ in range(500):
        reading = next(stream)
        assert payloads(reading) == (reading.key(), reading.to_json())


def test_a_timestamp_without_microseconds_still_has_them():
    generator = ReadingGenerator(customers=1, seed=1)
    reading = generator.reading(1, datetime(2026, 1, 1, 12, 0, tzinfo=UTC))
    assert b'"timestamp":"2026-01-01T12:00:00.000000+00:00"' in Payloads()(reading)[1]
