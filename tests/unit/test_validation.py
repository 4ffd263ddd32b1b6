"""The validation table: what is stored, flagged or dead-lettered, and why."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heartbeat.validation import (
    Anomaly,
    Reading,
    Reason,
    Rejection,
    classify,
    conflicting_reading,
    judge,
    validate,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SKEW = timedelta(minutes=5)


def payload(**fields: object) -> bytes:
    reading = {"customer_id": 7, "timestamp": "2026-01-01T11:59:00+00:00", "heart_rate": 72}
    reading.update(fields)
    return json.dumps({k: v for k, v in reading.items() if v is not ...}).encode()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, Reason.EMPTY_PAYLOAD),
        (b"", Reason.EMPTY_PAYLOAD),
        (b"\xff\xfe{}", Reason.INVALID_UTF8),
        (b"{not json", Reason.INVALID_JSON),
        (b"NaN", Reason.NOT_AN_OBJECT),
        (b"[1, 2]", Reason.NOT_AN_OBJECT),
        (b'"text"', Reason.NOT_AN_OBJECT),
        (payload(customer_id=...), Reason.MISSING_FIELD),
        (payload(heart_rate=...), Reason.MISSING_FIELD),
        (payload(timestamp=...), Reason.MISSING_FIELD),
        (payload(customer_id="7"), Reason.INVALID_TYPE),
        (payload(customer_id=7.0), Reason.INVALID_TYPE),
        (payload(customer_id=True), Reason.INVALID_TYPE),
        (payload(heart_rate="72"), Reason.INVALID_TYPE),
        (payload(heart_rate=72.5), Reason.INVALID_TYPE),
        (payload(heart_rate=None), Reason.INVALID_TYPE),
        (payload(timestamp=1767268800), Reason.INVALID_TYPE),
        (payload(customer_id=0), Reason.INVALID_CUSTOMER_ID),
        (payload(customer_id=-3), Reason.INVALID_CUSTOMER_ID),
        (payload(customer_id=2**63), Reason.INVALID_CUSTOMER_ID),
        (payload(heart_rate=29), Reason.HEART_RATE_OUT_OF_RANGE),
        (payload(heart_rate=221), Reason.HEART_RATE_OUT_OF_RANGE),
        (payload(heart_rate=0), Reason.HEART_RATE_OUT_OF_RANGE),
        (payload(timestamp="yesterday"), Reason.INVALID_TIMESTAMP),
        (payload(timestamp="2026-13-01T00:00:00Z"), Reason.INVALID_TIMESTAMP),
        (payload(timestamp="2026-01-01T11:59:00"), Reason.TIMESTAMP_WITHOUT_TIMEZONE),
        (payload(timestamp="2026-01-01T12:05:01Z"), Reason.TIMESTAMP_IN_FUTURE),
        (payload(timestamp="2026-01-01T14:00:00+01:00"), Reason.TIMESTAMP_IN_FUTURE),
    ],
)
def test_malformed_or_out_of_range_message_is_rejected_with_its_reason(raw, reason):
    verdict = validate(raw, now=NOW, max_future_skew=SKEW)
    assert isinstance(verdict, Rejection)
    assert verdict.reason is reason
    assert verdict.detail


@pytest.mark.parametrize(
    ("heart_rate", "anomaly"),
    [
        (30, Anomaly.LOW),
        (44, Anomaly.LOW),
        (45, None),
        (72, None),
        (180, None),
        (181, Anomaly.HIGH),
        (220, Anomaly.HIGH),
    ],
)
def test_valid_heart_rate_is_stored_and_flagged_outside_45_to_180(heart_rate, anomaly):
    verdict = validate(payload(heart_rate=heart_rate), now=NOW, max_future_skew=SKEW)
    assert verdict == Reading(7, datetime(2026, 1, 1, 11, 59, tzinfo=UTC), heart_rate, anomaly)
    assert classify(heart_rate) is anomaly


def test_timestamp_in_another_zone_is_converted_to_utc():
    verdict = validate(
        payload(timestamp="2026-01-01T13:30:00+02:00"), now=NOW, max_future_skew=SKEW
    )
    assert isinstance(verdict, Reading)
    assert verdict.ts == datetime(2026, 1, 1, 11, 30, tzinfo=UTC)
    assert verdict.ts.utcoffset() == timedelta(0)


def test_z_suffix_and_timestamp_within_the_allowed_skew_are_accepted():
    verdict = validate(payload(timestamp="2026-01-01T12:04:59Z"), now=NOW, max_future_skew=SKEW)
    assert isinstance(verdict, Reading)


def at(timestamp: str) -> Reading | Rejection:
    return validate(payload(timestamp=timestamp), now=NOW, max_future_skew=SKEW)


@pytest.mark.parametrize(
    ("timestamp", "stored"),
    [
        ("2026-01-01T11:59:00Z", datetime(2026, 1, 1, 11, 59, tzinfo=UTC)),
        ("2026-01-01t11:59:00z", datetime(2026, 1, 1, 11, 59, tzinfo=UTC)),
        ("2026-01-01 11:59:00Z", datetime(2026, 1, 1, 11, 59, tzinfo=UTC)),
        ("2026-01-01T11:59:00+00:00", datetime(2026, 1, 1, 11, 59, tzinfo=UTC)),
        # RFC 3339's "offset unknown" is still the same instant in UTC.
        ("2026-01-01T11:59:00-00:00", datetime(2026, 1, 1, 11, 59, tzinfo=UTC)),
        ("2026-01-01T06:29:00-05:30", datetime(2026, 1, 1, 11, 59, tzinfo=UTC)),
        ("2026-01-01T23:59:00+12:00", datetime(2026, 1, 1, 11, 59, tzinfo=UTC)),
        ("2026-01-01T11:59:00.5Z", datetime(2026, 1, 1, 11, 59, 0, 500_000, tzinfo=UTC)),
        ("2026-01-01T11:59:00.000001Z", datetime(2026, 1, 1, 11, 59, 0, 1, tzinfo=UTC)),
        # Finer than a microsecond: truncated, never rounded up into the next microsecond.
        ("2026-01-01T11:59:00.0000019Z", datetime(2026, 1, 1, 11, 59, 0, 1, tzinfo=UTC)),
        ("2026-01-01T11:59:00.999999999Z", datetime(2026, 1, 1, 11, 59, 0, 999_999, tzinfo=UTC)),
        ("2024-02-29T11:59:00Z", datetime(2024, 2, 29, 11, 59, tzinfo=UTC)),
    ],
)
def test_rfc_3339_timestamps_are_accepted_and_stored_in_utc(timestamp, stored):
    verdict = at(timestamp)
    assert isinstance(verdict, Reading), verdict
    assert verdict.ts == stored
    assert verdict.ts.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("timestamp", "reason"),
    [
        ("2026-01-01\x0011:59:00Z", Reason.INVALID_TIMESTAMP),  # any other separator
        ("2026-01-01X11:59:00Z", Reason.INVALID_TIMESTAMP),
        ("2026-01-01_11:59:00Z", Reason.INVALID_TIMESTAMP),
        ("2026-01-01T11:59Z", Reason.INVALID_TIMESTAMP),  # seconds are required
        ("2026-01-01T11Z", Reason.INVALID_TIMESTAMP),
        ("2026-01-01Z", Reason.INVALID_TIMESTAMP),
        ("2026-01-01", Reason.INVALID_TIMESTAMP),
        ("2026-W01-4T11:59:00Z", Reason.INVALID_TIMESTAMP),  # ISO 8601 week date
        ("2026-001T11:59:00Z", Reason.INVALID_TIMESTAMP),  # ISO 8601 ordinal date
        ("20260101T115900Z", Reason.INVALID_TIMESTAMP),  # ISO 8601 basic format
        ("2026-01-01T115900Z", Reason.INVALID_TIMESTAMP),
        ("2026-01-01T11:59:00,5Z", Reason.INVALID_TIMESTAMP),  # comma fraction
        ("2026-01-01T11:59:00.Z", Reason.INVALID_TIMESTAMP),  # empty fraction
        ("2026-01-01T11:59:00+0100", Reason.INVALID_TIMESTAMP),  # offset without colon
        ("2026-01-01T11:59:00+01", Reason.INVALID_TIMESTAMP),
        ("2026-01-01T11:59:00+01:00:30", Reason.INVALID_TIMESTAMP),  # offset seconds
        ("2026-01-01T11:59:00+24:00", Reason.INVALID_TIMESTAMP),
        ("2026-01-01T11:59:00+05:60", Reason.INVALID_TIMESTAMP),
        ("2026-01-01T11:59:00 Z", Reason.INVALID_TIMESTAMP),
        (" 2026-01-01T11:59:00Z", Reason.INVALID_TIMESTAMP),
        ("2026-01-01T11:59:00Z\n", Reason.INVALID_TIMESTAMP),
        ("2026-01-01T11:59:00UTC", Reason.INVALID_TIMESTAMP),
        ("2026-01-01T24:00:00Z", Reason.INVALID_TIMESTAMP),
        ("2026-01-01T11:60:00Z", Reason.INVALID_TIMESTAMP),
        ("2025-12-31T23:59:60Z", Reason.INVALID_TIMESTAMP),  # leap second: no datetime for it
        ("2026-02-29T11:59:00Z", Reason.INVALID_TIMESTAMP),
        ("2026-00-10T11:59:00Z", Reason.INVALID_TIMESTAMP),
        ("0000-01-01T00:00:00Z", Reason.INVALID_TIMESTAMP),
        ("\u0662\u0660\u0662\u0666-01-01T11:59:00Z", Reason.INVALID_TIMESTAMP),  # Arabic digits
        ("2026-01-01T11:59:00", Reason.TIMESTAMP_WITHOUT_TIMEZONE),
        ("2026-01-01 11:59:00.123", Reason.TIMESTAMP_WITHOUT_TIMEZONE),
        ("2026-01-01t11:59:00", Reason.TIMESTAMP_WITHOUT_TIMEZONE),
    ],
)
def test_timestamps_outside_rfc_3339_are_rejected_with_their_reason(timestamp, reason):
    verdict = at(timestamp)
    assert isinstance(verdict, Rejection), verdict
    assert verdict.reason is reason
    assert repr(timestamp[:20])[1:-1] in verdict.detail


def test_timestamps_a_fraction_of_a_microsecond_apart_are_the_same_instant():
    first, second = at("2026-01-01T11:59:00.0000010Z"), at("2026-01-01T11:59:00.0000014Z")
    assert isinstance(first, Reading)
    assert isinstance(second, Reading)
    assert first.ts == second.ts


def test_conflicting_reading_names_the_customer_the_instant_and_both_heart_rates():
    reading = Reading(7, datetime(2026, 1, 1, 11, 59, 0, 1, tzinfo=UTC), 71, None)
    assert conflicting_reading(reading, 70) == Rejection(
        Reason.CONFLICTING_READING,
        "customer 7 at 2026-01-01T11:59:00.000001Z already stored with heart_rate 70;"
        " this reading says 71",
    )


def test_extra_fields_are_ignored():
    verdict = validate(payload(device="watch-3"), now=NOW, max_future_skew=SKEW)
    assert isinstance(verdict, Reading)


def test_missing_field_detail_names_every_missing_field():
    verdict = validate(b'{"heart_rate": 70}', now=NOW, max_future_skew=SKEW)
    assert isinstance(verdict, Rejection)
    assert "customer_id" in verdict.detail
    assert "timestamp" in verdict.detail


# --- validation answers every input ------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
timestamps = st.one_of(
    st.text(max_size=40),
    st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat()),
    st.sampled_from(
        ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-14:00", "2026-02-30T00:00:00Z"]
    ),
)
readings = st.fixed_dictionaries(
    {},
    optional={
        "customer_id": st.integers() | json_values,
        "heart_rate": st.integers(-10, 300) | json_values,
        "timestamp": timestamps | json_values,
    },
)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_get_a_verdict_never_an_exception(raw):
    verdict = validate(raw, now=NOW, max_future_skew=SKEW)
    assert isinstance(verdict, (Reading, Rejection))


@settings(max_examples=600, deadline=None)
@given(readings)
def test_arbitrary_json_objects_get_a_verdict_never_an_exception(document):
    verdict = validate(json.dumps(document).encode(), now=NOW, max_future_skew=SKEW)
    assert isinstance(verdict, (Reading, Rejection))
    if isinstance(verdict, Reading):
        assert 30 <= verdict.heart_rate <= 220
        assert verdict.ts.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"[" * 100_000, Reason.INVALID_JSON),
        (payload(timestamp="0001-01-01T00:00:00+01:00"), Reason.INVALID_TIMESTAMP),
    ],
)
def test_inputs_that_once_raised_are_rejected_with_a_reason(raw, reason):
    verdict = validate(raw, now=NOW, max_future_skew=SKEW)
    assert isinstance(verdict, Rejection)
    assert verdict.reason is reason


def test_a_failure_inside_validation_becomes_an_unprocessable_rejection(monkeypatch):
    import heartbeat.validation as validation

    def broken(*_, **__):
        raise RuntimeError("boom")

    monkeypatch.setattr(validation, "validate", broken)
    verdict = judge(payload(), now=NOW, max_future_skew=SKEW)
    assert verdict == Rejection(Reason.UNPROCESSABLE, "RuntimeError: boom")
