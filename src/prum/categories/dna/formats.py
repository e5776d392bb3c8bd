"""A DNA profile from whatever format it came in: JSON, CSV or ANSI/NIST-ITL Type-18.

Apart from profile.py (the profile and its Annex rules) and nist.py (the transaction
format), which both know nothing of each other's formats.
"""

from __future__ import annotations

from prum.categories.dna.loci import LocusSet
from prum.categories.dna.nist import read_profiles
from prum.categories.dna.profile import Profile, Rules, as_text, parse_csv, parse_json
from prum.errors import InvalidDnaProfile

DEFAULT_RULES = Rules()


def parse_profile(data: bytes | str, *, loci: LocusSet, rules: Rules = DEFAULT_RULES) -> Profile:
    """JSON (starts with ``{``), an ANSI/NIST-ITL transaction with one Type-18 record
    (starts with ``1.001:``; prum.categories.dna.nist) or CSV."""
    if isinstance(data, bytes) and data.startswith(b"1.001:"):
        profiles = read_profiles(data, loci=loci, rules=rules)
        if len(profiles) != 1:
            raise InvalidDnaProfile(
                f"the transaction holds {len(profiles)} DNA profiles (Type-18 records), not"
                " one; import several with `prum dna import`"
            )
        return profiles[0]
    text = as_text(data)
    if text.lstrip().startswith("{"):
        return parse_json(text, loci=loci, rules=rules)
    return parse_csv(text, loci=loci, rules=rules)
