"""The producer's payloads are byte for byte what the generator's readings say."""

from datetime import UTC, datetime, timedelta

import pytest

from heartbeat.generator import ReadingGenerator

START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(("customers", "most"), [(50, 4096), (50, 7), (1000, 4096), (1000, 300)])
def test_payload_rounds_are_the_keys_and_json_of_the_same_readings(customers, most):
    """Below some 400 customers a value is formatted whole, above it from a table: both,
    and rounds cut into parts, give what the same seed's readings give."""
    step = timedelta(seconds=1)
    readings = ReadingGenerator(customers=customers, seed=7, invalid_rate=0.2).rounds(START, step)
    parts = ReadingGenerator(customers=customers, seed=7, invalid_rate=0.2).payload_rounds(
        START, step, most=most
    )
    sent = 0
    while sent < 5 * customers:
        keys, values = next(parts)
        assert 1 <= len(values) <= most
        expected = [next(readings) for _ in values]
        assert keys == [r.key() for r in expected]
        assert values == [r.to_json() for r in expected]
        sent += len(values)


def test_a_part_of_a_round_shares_the_rounds_timestamp():
    parts = ReadingGenerator(customers=3, seed=1).payload_rounds(START, timedelta(minutes=1), 2)
    stamps = [value.split(b'"timestamp":"')[1][:32] for _ in range(4) for value in next(parts)[1]]
    assert (
        stamps
        == [b"2026-01-01T00:00:00.000000+00:00"] * 3 + [b"2026-01-01T00:01:00.000000+00:00"] * 3
    )


def test_a_timestamp_without_microseconds_still_has_them():
    generator = ReadingGenerator(customers=1, seed=1)
    _, values = next(generator.payload_rounds(datetime(2026, 1, 1, 12, tzinfo=UTC), timedelta(1)))
    assert b'"timestamp":"2026-01-01T12:00:00.000000+00:00"' in values[0]
