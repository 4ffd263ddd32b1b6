"""The binary COPY data of a batch's readings, read back field by field."""

import struct

from heartbeat.reading_rows import COPY_SIGNATURE, COPY_TRAILER, pack_rows
from heartbeat.validation import classify


def read_rows(data: bytes) -> list[tuple[object, ...]]:
    assert data.startswith(COPY_SIGNATURE)
    assert data.endswith(COPY_TRAILER)
    pos, rows = len(COPY_SIGNATURE), []
    while data[pos : pos + 2] != COPY_TRAILER:
        (count,) = struct.unpack_from("!h", data, pos)
        pos += 2
        fields: list[object] = []
        for _ in range(count):
            (size,) = struct.unpack_from("!i", data, pos)
            pos += 4
            if size < 0:
                fields.append(None)
                continue
            fields.append(data[pos : pos + size])
            pos += size
        rows.append(tuple(fields))
    assert pos + 2 == len(data)
    return rows


def test_each_reading_becomes_a_row_of_ordinal_customer_instant_rate_and_anomaly():
    rows = read_rows(pack_rows([7, 2**63 - 1, 1], [0, -5, 10**15], [72, 30, 220]))
    decoded = [
        (
            struct.unpack("!i", o)[0],
            struct.unpack("!q", c)[0],
            struct.unpack("!q", t)[0],
            struct.unpack("!h", h)[0],
            a,
        )
        for o, c, t, h, a in rows
    ]
    assert decoded == [
        (0, 7, 0, 72, None),
        (1, 2**63 - 1, -5, 30, b"low"),
        (2, 1, 10**15, 220, b"high"),
    ]


def test_the_anomaly_of_every_valid_rate_is_the_one_classify_gives():
    rates = list(range(30, 221))
    rows = read_rows(pack_rows([1] * len(rates), [0] * len(rates), rates))
    for rate, row in zip(rates, rows, strict=True):
        anomaly = classify(rate)
        assert row[4] == (None if anomaly is None else anomaly.value.encode())


def test_no_readings_is_an_empty_copy():
    assert read_rows(pack_rows([], [], [])) == []
