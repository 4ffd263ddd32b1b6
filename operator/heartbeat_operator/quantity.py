"""Kubernetes resource quantities (``100m``, ``0.1``, ``1Gi``, ``1e3``), read as amounts.

The API server stores a quantity in its own canonical spelling (``0.1`` comes back as
``100m``, ``1024Mi`` as ``1Gi``), so a quantity the operator wrote must be compared with
what it reads back by amount, never as a string. The grammar is the API server's:
a signed decimal number, then a binary suffix (``Ki`` .. ``Ei``), a decimal one
(``n u m k M G T P E``) or a decimal exponent (``e3``, ``E-2``).
"""

from __future__ import annotations

import re
from decimal import Decimal

_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_QUANTITY = re.compile(
    r"(?P<number>[+-]?(?:\d+\.?\d*|\.\d+))"
    r"(?:(?P<suffix>[KMGTPE]i|[numkMGTPE])|[eE](?P<exponent>[+-]?\d+))?"
)


def parse_quantity(text: str) -> Decimal:
    """The amount ``text`` stands for, in base units (cores, bytes); ``ValueError`` if none."""
    found = _QUANTITY.fullmatch(text)
    if found is None:
        raise ValueError(f"{text!r} is not a Kubernetes quantity (like 100m, 0.5, 96Mi, 1Gi)")
    number = Decimal(found["number"])
    suffix = found["suffix"] or ""
    if suffix in _BINARY:
        return number * (1 << 10 * _BINARY[suffix])
    exponent = int(found["exponent"]) if found["exponent"] else _DECIMAL[suffix]
    return number.scaleb(exponent)
