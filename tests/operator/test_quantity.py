"""Resource quantities: every spelling the API server accepts, compared by amount, and
nothing it refuses (which ``kubernetes.utils.parse_quantity`` alone would take)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from heartbeat_operator.settings import quantity_amount


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("0.1", "100m"),
        (".5", "500m"),
        ("1024Mi", "1Gi"),
        ("1536Mi", "1.5Gi"),
        ("1000", "1k"),
        ("1e3", "1k"),
        ("1E3", "1k"),
        ("1E", "1e18"),
        ("+2", "2"),
        ("0", "0m"),
    ],
)
def test_two_spellings_of_one_amount_parse_equal(written: str, canonical: str) -> None:
    assert quantity_amount(written) == quantity_amount(canonical)


@pytest.mark.parametrize(
    ("written", "amount"),
    [("100m", Decimal("0.1")), ("96Mi", Decimal(96 * 2**20)), ("2k", Decimal(2000))],
)
def test_a_quantity_parses_to_its_amount_in_base_units(written: str, amount: Decimal) -> None:
    assert quantity_amount(written) == amount


@pytest.mark.parametrize(
    "written",
    [
        "",
        " ",
        "lots",
        "96MB",
        "1e",
        "1.2.3",
        "Mi",
        "1 Gi",
        "0x10",
        "NaN",
        "Inf",
        "1_000",
        " 1",
        "1K",
        "1e3m",
    ],
)
def test_what_the_api_server_would_refuse_is_not_a_quantity(written: str) -> None:
    with pytest.raises(ValueError, match="quantity"):
        quantity_amount(written)
