"""Search keys of registration plates and of holder identities.

A plate is written many ways: ``W-123 AB``, ``w 123ab``, ``W·123·AB``, or with
Cyrillic letters that look Latin (a Bulgarian or Ukrainian keyboard, a copy from a
scanned document). :func:`plate_key` maps all of them to one key, ``W123AB``; the
registered spelling is kept beside it for the answer. Names are folded the way the
police-records index folds them (transliteration to ASCII, upper case, one space).
"""

from __future__ import annotations

import unicodedata

from anyascii import anyascii

from prum.errors import InvalidPlate

# Longest key kept: the longest EU formats have 8-10 signs; 15 leaves room for
# diplomatic and trade plates, while refusing free text pasted into the field.
MAX_PLATE_KEY = 15

# Letters that are drawn like a Latin plate letter (Cyrillic and Greek capitals and
# small letters, after upper-casing). The mapping is by shape, not by sound: Cyrillic
# "В" is the Latin "B" on a plate, although it is pronounced "V".
LOOKALIKES = {
    # Cyrillic
    "А": "A",
    "В": "B",
    "Е": "E",
    "Ё": "E",
    "К": "K",
    "М": "M",
    "Н": "H",
    "О": "O",
    "Р": "P",
    "С": "C",
    "Т": "T",
    "У": "Y",
    "Х": "X",
    "І": "I",
    "Ї": "I",
    "Ј": "J",
    "Ѕ": "S",
    # Greek
    "Α": "A",
    "Β": "B",
    "Ε": "E",
    "Ζ": "Z",
    "Η": "H",
    "Ι": "I",
    "Κ": "K",
    "Μ": "M",
    "Ν": "N",
    "Ο": "O",
    "Ρ": "P",
    "Τ": "T",
    "Υ": "Y",
    "Χ": "X",
}

# Latin letters whose plain form is not reached by stripping accents.
_LATIN_SPECIAL = {"Ø": "O", "Ł": "L", "Đ": "D", "Ð": "D", "Ħ": "H", "ß": "SS", "Æ": "AE"}


def plate_key(text: str) -> str:
    """The search key of a registration plate (Directive 1999/37/EC field A).

    Steps, in order:

    1. Unicode NFKC, so full-width and other compatibility forms become plain
       characters ("Ｗ１２" is "W12").
    2. Upper case.
    3. Cyrillic and Greek letters drawn like Latin ones become those (``LOOKALIKES``).
    4. Accents are dropped ("MÜ" is "MU", "Š" is "S"): an officer abroad seldom has the
       national keyboard, and a plate search goes to one country, whose answer shows
       the plate as registered.
    5. Everything that is not a letter or digit goes: spaces, dashes, dots, middle dots,
       slashes and the national separators (the seal or coat of arms between the
       district and the number is typed as a space, a dash or a dot).

    The result is non-empty, at most ``MAX_PLATE_KEY`` characters of ``A-Z0-9``;
    otherwise :class:`InvalidPlate` names the character or the length. Applying the
    function to its own result changes nothing.
    """
    out: list[str] = []
    for ch in unicodedata.normalize("NFKC", text).upper():
        ch = LOOKALIKES.get(ch, ch)
        if "A" <= ch <= "Z" or "0" <= ch <= "9":
            out.append(ch)
            continue
        if not ch.isalnum():
            continue  # separator, space, punctuation
        folded = _LATIN_SPECIAL.get(ch) or "".join(
            c for c in unicodedata.normalize("NFD", ch) if not unicodedata.combining(c)
        )
        if folded and all("A" <= c <= "Z" for c in folded):
            out.append(folded)
            continue
        raise InvalidPlate(
            f"the plate {text!r} has {ch!r} ({unicodedata.name(ch, 'unnamed')}),"
            " which is not a letter used on registration plates",
            plate=text,
        )
    key = "".join(out)
    if not key:
        raise InvalidPlate(f"the plate {text!r} has no letters or digits", plate=text)
    if len(key) > MAX_PLATE_KEY:
        raise InvalidPlate(
            f"the plate {text!r} has {len(key)} letters and digits;"
            f" no plate has more than {MAX_PLATE_KEY}",
            plate=text,
        )
    return key


def name_key(text: str) -> str:
    """A name folded for comparison: ASCII transliteration (anyascii: "Müller" is
    "MULLER", "Łukasz" is "LUKASZ", "Παπαδόπουλος" is "PAPADOPOULOS"), upper case,
    hyphens and apostrophes as spaces, other punctuation dropped, single spaces."""
    ascii_text = anyascii(unicodedata.normalize("NFC", text)).upper()
    cleaned = "".join(
        c if c.isalnum() else " " if c in " -'’`\t" else "" for c in ascii_text if c.isascii()
    )
    return " ".join(cleaned.split())
