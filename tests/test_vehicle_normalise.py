"""Plate keys, name keys and VIN rules (Directive 1999/37/EC A and E; ISO 3779)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prum.categories.vehicle.normalise import LOOKALIKES, MAX_PLATE_KEY, name_key, plate_key
from prum.categories.vehicle.vin import check_digit, validate_vin
from prum.errors import InvalidPlate, InvalidVin

PLATE_CHARS = st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
SEPARATORS = st.sampled_from([" ", "-", ".", "·", "\u00a0", "/", "–", "_", "\t"])
plates = st.text(PLATE_CHARS, min_size=1, max_size=MAX_PLATE_KEY)

# Latin letter -> a Cyrillic or Greek letter drawn the same way.
_TO_LOOKALIKE: dict[str, list[str]] = {}
for _other, _latin in LOOKALIKES.items():
    _TO_LOOKALIKE.setdefault(_latin, []).append(_other)


@given(plates)
def test_plate_key_of_a_key_is_the_key(plate: str) -> None:
    assert plate_key(plate) == plate
    assert plate_key(plate_key(plate)) == plate_key(plate)


@given(plates, st.data())
def test_plate_key_ignores_separators_and_case(plate: str, data: st.DataObject) -> None:
    typed = ""
    for ch in plate:
        typed += "".join(data.draw(st.lists(SEPARATORS, max_size=2)))
        typed += ch.lower() if data.draw(st.booleans()) else ch
    typed += "".join(data.draw(st.lists(SEPARATORS, max_size=2)))
    assert plate_key(typed) == plate


@given(plates, st.data())
def test_plate_key_reads_cyrillic_and_greek_lookalikes_as_latin(
    plate: str, data: st.DataObject
) -> None:
    typed = "".join(data.draw(st.sampled_from([ch, *_TO_LOOKALIKE.get(ch, [])])) for ch in plate)
    assert plate_key(typed) == plate
    assert plate_key(typed.lower()) == plate


@settings(max_examples=300)
@given(st.text(max_size=30))
def test_plate_key_is_ascii_or_a_clear_error(text: str) -> None:
    try:
        key = plate_key(text)
    except InvalidPlate as exc:
        assert exc.code == "invalid_plate"
        assert repr(text) in exc.message
        return
    assert 1 <= len(key) <= MAX_PLATE_KEY
    assert all(c.isascii() and (c.isupper() or c.isdigit()) for c in key)
    assert plate_key(key) == key


def test_plate_key_examples() -> None:
    assert plate_key("W-123 AB") == "W123AB"
    assert plate_key("w·123·ab") == "W123AB"
    assert plate_key("MÜ-AB 12") == "MUAB12"
    assert plate_key("СА 1234 ВР") == "CA1234BP"  # Bulgarian, Cyrillic letters
    assert plate_key("ＡＢ－１２") == "AB12"  # full-width


@pytest.mark.parametrize(
    ("text", "words"),
    [("", "no letters or digits"), (" - . ", "no letters or digits"), ("AB Ж 12", "'Ж'")],
)
def test_plate_key_refuses_with_the_reason(text: str, words: str) -> None:
    with pytest.raises(InvalidPlate, match=words):
        plate_key(text)


def test_plate_key_refuses_text_longer_than_any_plate() -> None:
    with pytest.raises(InvalidPlate, match="16 letters and digits"):
        plate_key("A" * 16)


def test_name_key_folds_diacritics_scripts_and_punctuation() -> None:
    assert name_key("Müller") == name_key("MULLER") == "MULLER"
    assert name_key("  Łukaszewicz ") == "LUKASZEWICZ"
    assert name_key("Jean-Pierre") == name_key("jean  pierre") == "JEAN PIERRE"
    assert name_key("Иванов") == "IVANOV"
    assert name_key("O’Brien") == "O BRIEN"


# Published example: 1M8GDM9AXKP042788 is the check-digit example of 49 CFR 565.
VALID_NA = "1M8GDM9AXKP042788"


def test_check_digit_of_the_published_example() -> None:
    assert check_digit(VALID_NA) == "X"
    assert validate_vin(VALID_NA) == VALID_NA


def test_vin_is_cleaned_of_spaces_dashes_and_case() -> None:
    assert validate_vin("1m8gdm9a-xkp 042788") == VALID_NA


def test_vin_with_a_wrong_check_digit_is_refused_naming_position_9() -> None:
    wrong = VALID_NA[:8] + "5" + VALID_NA[9:]
    with pytest.raises(InvalidVin, match=r"position 9 is '5'.*give 'X'") as err:
        validate_vin(wrong)
    assert err.value.details["position"] == 9


def test_european_vin_is_not_held_to_the_north_american_check_digit() -> None:
    vin = "WVWZZZ1KZ6W000001"  # position 9 is 'Z', allowed in Europe
    assert validate_vin(vin) == vin
    with pytest.raises(InvalidVin, match="check digit"):
        validate_vin(vin, rule="always")


@pytest.mark.parametrize(("letter", "position"), [("I", 4), ("O", 12), ("Q", 17)])
def test_vin_refuses_i_o_q_with_the_position(letter: str, position: int) -> None:
    vin = list("WVWZZZ1KZ6W000001")
    vin[position - 1] = letter
    with pytest.raises(InvalidVin, match=f"'{letter}' at position {position}"):
        validate_vin("".join(vin))


@pytest.mark.parametrize("text", ["WVWZZZ1KZ6W00000", "WVWZZZ1KZ6W0000012"])
def test_vin_of_the_wrong_length_is_refused_with_the_length(text: str) -> None:
    with pytest.raises(InvalidVin, match=f"has {len(text)} characters; it needs 17"):
        validate_vin(text)


def test_short_chassis_number_is_accepted_only_before_1981() -> None:
    assert validate_vin("118 09 12 345", first_registration=dt.date(1972, 5, 1)) == "1180912345"
    with pytest.raises(InvalidVin, match="after shorter chassis numbers ended in 1981"):
        validate_vin("1180912345", first_registration=dt.date(1995, 5, 1))
    assert validate_vin("1180912345", legacy=True) == "1180912345"
    with pytest.raises(InvalidVin, match="4 characters"):
        validate_vin("1180", legacy=True)


def test_vin_with_punctuation_names_the_character() -> None:
    with pytest.raises(InvalidVin, match="'#' at position 3"):
        validate_vin("WV#ZZZ1KZ6W000001")


@given(st.text(st.sampled_from("ABCDEFGHJKLMNPRSTUVWXYZ0123456789"), min_size=17, max_size=17))
def test_a_vin_with_its_check_digit_passes_every_rule(text: str) -> None:
    vin = text[:8] + check_digit(text) + text[9:]
    assert validate_vin(vin, rule="always") == vin
    other = next(c for c in "0123456789X" if c != vin[8])
    with pytest.raises(InvalidVin, match="check digit"):
        validate_vin(vin[:8] + other + vin[9:], rule="always")
