"""Vehicle identification numbers (Directive 1999/37/EC field E; ISO 3779).

Since 1981 a VIN has 17 characters from ``A-Z0-9`` without ``I``, ``O`` and ``Q``
(they are too easily read as 1 and 0). ISO 3779 makes no check digit compulsory;
North America does (49 CFR 565.15): position 9 is the weighted sum of the other
sixteen, modulo 11, with 10 written ``X``. So the check digit is verified where that
rule applies: VINs whose world manufacturer identifier starts with 1-5 (United
States, Canada, Mexico) and, when configured, every VIN. A European VIN may carry
any allowed character in position 9.

Before 1981 each manufacturer numbered its chassis its own way, usually with fewer
characters; such a legacy number is accepted only for a vehicle first registered
before 1981, kept as written (upper case, without spaces and dashes) and never checked
for a check digit or for I/O/Q.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from prum.errors import InvalidVin

VIN_LENGTH = 17
# ISO 3779 section 5: Latin capitals and Arabic digits; I, O and Q are never used.
ALLOWED = frozenset("ABCDEFGHJKLMNPRSTUVWXYZ0123456789")
# The year the 17-character standard became compulsory (NHTSA, model year 1981).
STANDARD_SINCE = dt.date(1981, 1, 1)
# Shortest legacy chassis number kept: fewer characters identify nothing.
MIN_LEGACY_LENGTH = 5

# 49 CFR 565.15: letter values and position weights of the check digit.
TRANSLITERATION = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)

CheckDigitRule = Literal["north_america", "always", "never"]

_SEPARATORS = " -.\t"
_MISTAKES = {"I": "1", "O": "0", "Q": "0"}


def clean(text: str) -> str:
    """Upper case without spaces, dashes and dots (as VINs are often typed)."""
    return "".join(c for c in text.upper() if c not in _SEPARATORS)


def check_digit(vin: str) -> str:
    """The check digit of a 17-character VIN (49 CFR 565.15): ``0``-``9`` or ``X``."""
    total = sum(TRANSLITERATION[c] * w for c, w in zip(vin, WEIGHTS, strict=True))
    remainder = total % 11
    return "X" if remainder == 10 else str(remainder)


def check_digit_applies(vin: str, rule: CheckDigitRule) -> bool:
    if rule == "always":
        return True
    if rule == "never":
        return False
    return vin[0] in "12345"  # WMI region: North America


def validate_vin(
    text: str,
    *,
    first_registration: dt.date | None = None,
    rule: CheckDigitRule = "north_america",
    legacy: bool = False,
) -> str:
    """The VIN in its stored form, or :class:`InvalidVin` saying what is wrong.

    ``legacy``: accept a pre-1981 chassis number (fewer than 17 characters). At
    enrolment it is allowed when ``first_registration`` is before 1981; a query sets
    it, since the requester may be looking for such a vehicle.
    """
    vin = clean(text)
    if not vin:
        raise InvalidVin("the VIN is empty", vin=text)
    bad = [(i, c) for i, c in enumerate(vin, start=1) if not c.isascii() or not c.isalnum()]
    if bad:
        i, c = bad[0]
        raise InvalidVin(
            f"the VIN {text!r} has {c!r} at position {i}; a VIN has only letters and digits",
            vin=text,
            position=i,
        )
    if len(vin) < VIN_LENGTH:
        old = first_registration is not None and first_registration < STANDARD_SINCE
        if (legacy or old) and len(vin) >= MIN_LEGACY_LENGTH:
            return vin
        raise InvalidVin(
            f"the VIN {text!r} has {len(vin)} characters; it needs {VIN_LENGTH}"
            + (
                ""
                if first_registration is None or old
                else f" (the vehicle was first registered on {first_registration.isoformat()},"
                " after shorter chassis numbers ended in 1981)"
            ),
            vin=text,
            length=len(vin),
        )
    if len(vin) > VIN_LENGTH:
        raise InvalidVin(
            f"the VIN {text!r} has {len(vin)} characters; it needs {VIN_LENGTH}",
            vin=text,
            length=len(vin),
        )
    for i, c in enumerate(vin, start=1):
        if c not in ALLOWED:
            raise InvalidVin(
                f"the VIN {text!r} has {c!r} at position {i}, a letter no VIN contains"
                f" (ISO 3779 leaves out I, O and Q; did you mean {_MISTAKES[c]!r}?)",
                vin=text,
                position=i,
            )
    if check_digit_applies(vin, rule):
        expected = check_digit(vin)
        if vin[8] != expected:
            raise InvalidVin(
                f"the VIN {text!r} fails its check digit: position 9 is {vin[8]!r},"
                f" the other sixteen characters give {expected!r} (49 CFR 565.15);"
                " a character was probably mistyped",
                vin=text,
                position=9,
            )
    return vin
