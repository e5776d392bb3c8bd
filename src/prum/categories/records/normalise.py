"""Names to comparable tokens, whatever the script and the transliteration scheme.

Three stages, each undoing one source of spelling variation:

1. **Script** (:func:`to_latin`): Greek digraphs first (ου, ευ, αυ, μπ, ντ, γγ, γκ:
   ELOT 743 reads them as units), then ``anyascii`` for every script (Cyrillic after
   the BGN/PCGN-like scheme, Latin diacritics dropped: Müller -> Muller).
2. **Tokens** (:func:`name_tokens`): lower case, anything but letters splits, name
   particles (van, de, von, ...) dropped.
3. **Skeleton** (:func:`skeleton`): the rules below fold the common transliteration
   variants of one sound onto one spelling: German ``sch``/Polish ``sz``/English
   ``sh``; ``ks``/``x``; ``y``/``j``/``i``; ``ph``/``f``; ``w``/``v``; double letters;
   ``-off``/``-ow``/``-ov``. The rules are applied on both sides (query and index), so
   they need not be linguistically right, only the same; each removes a difference
   that the corruption model of prum.categories.records.synthetic (and real registers) produce.

:func:`phonetic` is a Soundex-like code of the skeleton (first letter and three
consonant classes, Russell and Odell's Soundex, 1918), used only for blocking.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from anyascii import anyascii

# ELOT 743 / UN 1987 read these Greek pairs as one sound; anyascii would spell them
# letter by letter (Παπαδόπουλος -> Papadopoylos).
_GREEK_DIGRAPHS = (
    ("ου", "ou"),
    ("αυ", "av"),
    ("ευ", "ev"),
    ("γγ", "ng"),
    ("γκ", "gk"),
    ("γξ", "nx"),
    ("γχ", "nch"),
    ("μπ", "mp"),
    ("ντ", "nt"),
)

# Name particles carry no identity and are often dropped or glued to the surname.
PARTICLES = frozenset(
    {"van", "von", "der", "den", "de", "di", "da", "del", "della", "des", "du", "la", "le", "zu"}
)

# (pattern, replacement), applied in order to a lower-case ASCII token. The order
# matters: multi-letter spellings first, single letters last.
_SKELETON_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), r)
    for p, r in (
        (r"schtsch|szcz|shch|chtch", "sh"),  # Щ in German, Polish, English, French
        (r"tsch|tch", "c"),  # Ч in German, French
        (r"sch", "sh"),  # Ш in German
        (r"cz|ch", "c"),  # Ч in Polish, English (and Х spelt "ch") -> one letter
        (r"sz", "sh"),  # Polish Ш
        (r"zh|dzh", "z"),  # Ж: zh (English), z (Polish ż, Czech ž after anyascii)
        (r"kh", "h"),  # Х: kh (English), h (Bulgarian, Serbian)
        (r"ph", "f"),
        (r"th", "t"),
        (r"gh", "g"),
        (r"dj", "d"),  # Ђ: dj, đ -> d
        (r"ck|q", "k"),
        (r"c(?=[aou])", "k"),  # hard c: Carlos / Karlos, Lucas / Lukas
        (r"ts|tz", "c"),  # Ц: ts (English), tz (German), c (Polish, Czech)
        (r"x", "ks"),
        (r"w", "v"),
        (r"ou", "u"),  # French У (Iouri), Greek ου
        (r"(?<=[aou])e", ""),  # German umlaut spellings ae, oe, ue (Mueller -> Muller)
        (r"[yj]", "i"),  # Й, Ю, Я and Greek υ: y, j or i depending on the scheme
        (r"(.)\1+", r"\1"),  # double letters: Ivanoff, Dmitrii
        (r"of$", "ov"),  # Russian -ов spelt -off (French, German) after the line above
    )
)

_LETTERS = re.compile(r"[a-z]+")

# Soundex classes (Russell and Odell): letters that sound alike share a digit.
_SOUNDEX = {
    **dict.fromkeys("bfpv", "1"),
    **dict.fromkeys("cgjkqsxz", "2"),
    **dict.fromkeys("dt", "3"),
    "l": "4",
    **dict.fromkeys("mn", "5"),
    "r": "6",
}


def to_latin(text: str) -> str:
    """Any script to lower-case ASCII (Greek digraphs read as ELOT 743 does)."""
    text = unicodedata.normalize("NFC", text).lower()
    plain = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    if any("\u0370" <= c <= "\u03ff" for c in plain):
        for greek, latin in _GREEK_DIGRAPHS:
            plain = plain.replace(greek, latin)
    return anyascii(plain).lower()


def name_tokens(text: str) -> list[str]:
    """The words of a name in Latin letters, particles dropped (order kept)."""
    return [t for t in _LETTERS.findall(to_latin(text)) if t not in PARTICLES]


@functools.lru_cache(maxsize=1 << 16)
def skeleton(token: str) -> str:
    """Fold transliteration variants of a lower-case ASCII token onto one spelling."""
    for pattern, replacement in _SKELETON_RULES:
        token = pattern.sub(replacement, token)
    return token


def name_skeletons(text: str) -> list[str]:
    """:func:`name_tokens` then :func:`skeleton`, empty results dropped."""
    return [s for s in (skeleton(t) for t in name_tokens(text)) if s]


@functools.lru_cache(maxsize=1 << 16)
def phonetic(token: str) -> str:
    """Soundex-like code of a skeleton: its first letter and up to 3 consonant classes."""
    if not token:
        return ""
    code = [token[0]]
    last = _SOUNDEX.get(token[0], "")
    for c in token[1:]:
        digit = _SOUNDEX.get(c, "")
        if digit and digit != last:
            code.append(digit)
            if len(code) == 4:
                break
        if c not in "hw":  # Soundex: h and w do not separate equal classes
            last = digit
    return "".join(code).ljust(4, "0")


def place_token(text: str) -> str:
    """A place name reduced to one comparable string (script, case, variants folded)."""
    return "".join(name_skeletons(text))
