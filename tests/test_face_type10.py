"""Facial images in ANSI/NIST-ITL Type-10 records: the reader, its profiles, the writer."""

from __future__ import annotations

import datetime as dt
import io
import struct
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from prum.categories.face.decode import decode_image
from prum.categories.face.type10 import FaceTransaction, read_face_transaction
from prum.categories.face.type10_write import FaceToWrite, write_face_transaction
from prum.demo.samples import SampleSet
from prum.errors import (
    ImageTooLarge,
    MalformedNistRecord,
    NotAllowedByProfile,
    PrumError,
    UnknownRecordType,
    UnreadableImage,
)

MAX_PIXELS = 40_000_000
#: Mean absolute error, 0-255, of a JPEG re-encoded at quality 90 (measured about 1.5).
JPEG_TOLERANCE = 4.0
#: Seconds a single malformed input may take before the reader counts as hanging.
TIME_BOUND = 2.0


def _jpeg(width: int = 64, height: int = 80, seed: int = 1, mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(seed)
    shape = (height, width, 3) if mode == "RGB" else (height, width)
    pixels = rng.integers(0, 255, shape, dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _jp2(width: int = 64, height: int = 80) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 120, np.uint8)).save(buffer, format="JPEG2000")
    return buffer.getvalue()


# --- a raw builder: any field left out, any value, lengths computed ----------------------


def _record(record_type: int, fields: list[tuple[int, bytes]]) -> bytes:
    """A tagged record with a correct LEN, fields in the order given (999 last)."""
    body = b"".join(
        f"{record_type}.{tag:03d}:".encode() + value + (b"" if tag == 999 else b"\x1d")
        for tag, value in fields
    )
    body = body.rstrip(b"\x1d")
    length = 0
    for _ in range(4):  # the length counts its own digits
        head = f"{record_type}.001:{length}\x1d".encode()
        length = len(head) + len(body) + 1
    return f"{record_type}.001:{length}\x1d".encode() + body + b"\x1c"


def _type10(image: bytes | None = None, **overrides: bytes | None) -> list[tuple[int, bytes]]:
    image = _jpeg() if image is None else image
    width, height = Image.open(io.BytesIO(image)).size
    fields = {
        2: b"1",
        3: b"FACE",
        4: b"XX00001",
        5: b"20260101",
        6: str(width).encode(),
        7: str(height).encode(),
        8: b"0",
        9: b"1",
        10: b"1",
        11: b"JPEGB",
        12: b"YCC",
        13: b"30",
        20: b"F",
        999: image,
    }
    names = {"IDC": 2, "IMT": 3, "SRC": 4, "PHD": 5, "HLL": 6, "VLL": 7, "SLC": 8}
    names |= {"THPS": 9, "TVPS": 10, "CGA": 11, "CSP": 12, "SAP": 13, "POS": 20, "DATA": 999}
    names |= {"SQS": 24}
    for name, value in overrides.items():
        tag = names[name]
        if value is None:
            fields.pop(tag, None)
        else:
            fields[tag] = value
    return sorted(fields.items(), key=lambda kv: (kv[0] == 999, kv[0]))


def _transaction(*faces: list[tuple[int, bytes]], version: bytes = b"0502") -> bytes:
    cnt = [f"1\x1f{len(faces) + 1}", "2\x1f0"] + [f"10\x1f{i}" for i in range(1, len(faces) + 1)]
    header = _record(
        1,
        [
            (2, version),
            (3, "\x1e".join(cnt).encode()),
            (4, b"FACE"),
            (5, b"20260102"),
            (7, b"XX00002"),
            (8, b"XX00001"),
            (9, b"TCN-0001"),
            (11, b"00.00"),
            (12, b"00.00"),
        ],
    )
    return header + _record(2, [(2, b"0")]) + b"".join(_record(10, f) for f in faces)


def test_builder_makes_what_the_reader_accepts() -> None:
    tx = read_face_transaction(_transaction(_type10()), "int-i")
    assert tx.control_number == "TCN-0001"
    assert [f.idc for f in tx.frontal] == [1]


# --- the round trip of every real sample photo ------------------------------------------


@pytest.mark.realdata
def test_every_sample_photo_round_trips_with_equal_pixels_and_fields(samples: SampleSet) -> None:
    quality = {"overall": 71.6, "sharpness": 88.0, "yaw": 93.2, "expression_neutrality": 100.0}
    for path, _identity in samples.images:
        data = path.read_bytes()
        original = decode_image(data, max_pixels=MAX_PIXELS).pixels
        for compression in ("auto", "JPEGL"):
            taken = dt.date(2025, 3, 14)
            face = FaceToWrite(data, pose="F", sap=51, quality=quality, capture_date=taken)
            written = write_face_transaction(
                [face],
                control_number=f"TCN-{path.stem}",
                originating_agency="XX0000001",
                destination_agency="YY0000001",
                compression=compression,
            )
            tx = read_face_transaction(written, "int-i")
            read = tx.best
            assert read.pixels is not None
            # JPEGB keeps the JPEG as it came (same bytes), JPEGL is lossless: equal pixels.
            assert np.array_equal(read.pixels, original), (path.name, compression)
            assert (read.pose, read.sap, read.source_agency) == ("F", 51, "XX0000001")
            assert (read.capture_date, read.height, read.width) == (taken, *original.shape[:2])
            assert (tx.originating_agency, tx.destination_agency) == ("XX0000001", "YY0000001")
            assert read.quality == {k: round(v) for k, v in quality.items()}
            as_jpeg = compression == "auto" and data.startswith(b"\xff\xd8")
            assert read.compression == ("JPEGB" if as_jpeg else "JPEGL")
            assert tx.control_number == f"TCN-{path.stem}"


def test_a_png_written_as_jpegb_comes_back_within_jpeg_tolerance() -> None:
    y, x = np.mgrid[0:100, 0:80]
    smooth = np.stack([x * 3, y * 2, (x + y) % 256], axis=2).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(smooth).save(buffer, format="PNG")
    written = write_face_transaction(
        [FaceToWrite(buffer.getvalue(), sap=30)], control_number="T", compression="JPEGB"
    )
    read = read_face_transaction(written, "int-i").best
    assert read.compression == "JPEGB" and read.pixels is not None
    error = np.abs(read.pixels.astype(int) - smooth.astype(int)).mean()
    assert error < JPEG_TOLERANCE


def test_grey_photo_is_written_as_grey_lossless() -> None:
    written = write_face_transaction(
        [FaceToWrite(_jpeg(mode="L"), sap=30)], control_number="T", compression="JPEGL"
    )
    read = read_face_transaction(written, "int-i").best
    assert (read.compression, read.colour_space) == ("JPEGL", "GRAY")


def test_frontal_images_are_chosen_by_pose_then_sap() -> None:
    data = _transaction(
        _type10(IDC=b"1", POS=b"L"),
        _type10(IDC=b"2", SAP=b"30"),
        _type10(IDC=b"3", SAP=b"51"),
        _type10(IDC=b"4", POS=b"A"),
    )
    tx = read_face_transaction(data, "int-i")
    assert [f.idc for f in tx.frontal] == [3, 2]
    assert [f.idc for f in tx.others] == [1, 4]


def test_decode_false_checks_the_header_but_leaves_pixels_to_the_pipeline() -> None:
    tx = read_face_transaction(_transaction(_type10()), "int-i", decode=False)
    assert tx.best.pixels is None
    assert tx.best.data == tx.best.payload


# --- INT-I, rule by rule: each broken, each named -----------------------------------------


def _refused(data: bytes, profile: str = "int-i", use: str = "enrol") -> PrumError:
    with pytest.raises(PrumError) as caught:
        read_face_transaction(data, profile, use=use)  # type: ignore[arg-type]
    return caught.value


@pytest.mark.parametrize("tag", list(range(3, 13)))
def test_int_i_refuses_a_missing_mandatory_field(tag: int) -> None:
    names = {3: "IMT", 4: "SRC", 5: "PHD", 6: "HLL", 7: "VLL", 8: "SLC", 9: "THPS"}
    names |= {10: "TVPS", 11: "CGA", 12: "CSP"}
    error = _refused(_transaction(_type10(**{names[tag]: None})))
    assert isinstance(error, NotAllowedByProfile | MalformedNistRecord)
    assert f"10.{tag:03d}" in error.message
    assert error.details["field"] == f"10.{tag:03d}"


def test_int_i_refuses_a_record_without_its_image() -> None:
    error = _refused(_transaction(_type10(DATA=None)))
    assert "10.999" in error.message


def test_a_record_without_idc_is_refused_naming_10_002() -> None:
    error = _refused(_transaction(_type10(IDC=None)))
    assert isinstance(error, MalformedNistRecord) and "10.002" in error.message


def test_int_i_refuses_an_image_that_is_not_a_face() -> None:
    data = _transaction(_type10(IMT=b"SCAR"))
    error = _refused(data)
    assert isinstance(error, NotAllowedByProfile)
    assert error.message.startswith("10.003 IMT 'SCAR' is not allowed by INT-I")
    assert "none is frontal" in _refused(data, "ansi-nist").message  # skipped, not read


def test_an_imt_outside_the_code_table_is_refused_by_both_profiles() -> None:
    for profile in ("int-i", "ansi-nist"):
        assert (
            "10.003 IMT 'PHOTO'" in _refused(_transaction(_type10(IMT=b"PHOTO")), profile).message
        )


def test_int_i_refuses_jpeg_2000_that_the_permissive_profile_reads() -> None:
    data = _transaction(_type10(_jp2(), CGA=b"JP2", CSP=b"SRGB"))
    error = _refused(data)
    assert isinstance(error, NotAllowedByProfile)
    assert error.message.startswith("10.011 CGA 'JP2' is not allowed by INT-I")
    assert read_face_transaction(data, "ansi-nist").best.compression == "JP2"


def test_a_compression_outside_the_code_table_is_refused_by_both_profiles() -> None:
    for cga in (b"GIF", b"WSQ20"):
        for profile in ("int-i", "ansi-nist"):
            error = _refused(_transaction(_type10(CGA=cga)), profile)
            assert error.details["field"] == "10.011"


def test_a_colour_space_outside_the_code_table_is_refused() -> None:
    assert "10.012 CSP 'CMYK'" in _refused(_transaction(_type10(CSP=b"CMYK"))).message


def test_int_i_refuses_to_enrol_a_mugshot_below_level_30() -> None:
    error = _refused(_transaction(_type10(SAP=b"20")))
    assert error.message.startswith("10.013 SAP '20' is not allowed by INT-I")


def test_int_i_refuses_to_enrol_without_sap() -> None:
    assert "10.013 SAP is missing" in _refused(_transaction(_type10(SAP=None))).message


@pytest.mark.parametrize("sap", [b"0", b"1"])
def test_a_cctv_still_is_allowed_as_a_probe(sap: bytes) -> None:
    tx = read_face_transaction(_transaction(_type10(SAP=sap)), "int-i", use="probe")
    assert tx.best.sap == int(sap)


def test_a_sap_outside_the_code_table_is_refused_even_for_a_probe() -> None:
    error = _refused(_transaction(_type10(SAP=b"31")), use="probe")
    assert "10.013 SAP '31'" in error.message


def test_int_i_refuses_pose_d_that_the_standard_allows() -> None:
    data = _transaction(_type10(POS=b"D"), _type10(IDC=b"2"))
    assert _refused(data).message.startswith("10.020 POS 'D' is not allowed by INT-I")
    assert read_face_transaction(data, "ansi-nist").others[0].pose == "D"


def test_an_unknown_pose_is_refused_by_both_profiles() -> None:
    for profile in ("int-i", "ansi-nist"):
        assert "10.020 POS 'X'" in _refused(_transaction(_type10(POS=b"X")), profile).message


def test_int_i_refuses_a_transaction_version_before_2011() -> None:
    error = _refused(_transaction(_type10(), version=b"0400"))
    assert error.message.startswith("1.002 VER '0400' is not allowed by INT-I")
    assert read_face_transaction(_transaction(_type10(), version=b"0400"), "ansi-nist")


def test_a_transaction_without_a_frontal_image_is_refused() -> None:
    error = _refused(_transaction(_type10(POS=b"L")))
    assert "none is frontal" in error.message


def test_an_unknown_profile_is_refused() -> None:
    assert "unknown profile" in _refused(_transaction(_type10()), "fbi").message


# --- lying fields and images ----------------------------------------------------------


def test_a_record_whose_pixel_size_lies_is_refused() -> None:
    error = _refused(_transaction(_type10(HLL=b"65")))
    assert "10.006" in error.message and "64 x 80" in error.message


def test_a_record_whose_format_lies_is_refused() -> None:
    error = _refused(_transaction(_type10(_jpeg(), CGA=b"JPEGL")))
    assert isinstance(error, UnreadableImage) and "10.999" in error.message


def _bomb(width: int = 60000, height: int = 60000) -> bytes:
    """A small JPEG whose frame header claims a huge image."""
    data = bytearray(_jpeg())
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def test_a_jpeg_bomb_inside_a_record_is_refused_before_decoding() -> None:
    honest = _transaction(_type10(_jpeg(), HLL=b"60000", VLL=b"60000", DATA=_bomb()))
    lying = _transaction(_type10(_jpeg(), DATA=_bomb()))
    for data in (honest, lying):
        started = time.perf_counter()
        error = _refused(data)
        assert isinstance(error, ImageTooLarge), error
        assert "megapixels" in error.message or "bomb" in error.message
        assert time.perf_counter() - started < 0.5


def test_a_record_type_with_a_binary_header_is_refused() -> None:
    data = _transaction(_type10()).replace(b"10\x1f1", b"4\x1f1", 1)
    assert isinstance(_refused(data), UnknownRecordType | MalformedNistRecord)


def test_a_lying_length_is_refused_naming_the_record() -> None:
    data = _transaction(_type10())
    start = data.index(b"10.001:")
    end = data.index(b"\x1d", start)
    lying = data[:start] + b"10.001:" + str(int(data[start + 7 : end]) - 9).encode() + data[end:]
    error = _refused(lying)
    assert isinstance(error, MalformedNistRecord) and "10.001" in error.message


# --- properties: every input an answer or a PrumError, never a hang --------------------

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _read_bounded(data: bytes, profile: str) -> FaceTransaction | None:
    started = time.perf_counter()
    try:
        return read_face_transaction(data, profile, use="probe")
    except PrumError:
        return None
    finally:
        assert time.perf_counter() - started < TIME_BOUND, "the reader took too long"


_VALID = _transaction(_type10(), _type10(IDC=b"2", POS=b"L"))
_LOSSLESS = write_face_transaction(
    [FaceToWrite(_jpeg(48, 48), sap=30)], control_number="T", compression="JPEGL"
)


@st.composite
def mutations(draw: st.DrawFn, data: bytes) -> bytes:
    """Lengths, separators, field values and payloads changed; files truncated."""
    result = bytearray(data)
    separators = [i for i, b in enumerate(result) if b in (0x1C, 0x1D, 0x1E, 0x1F, 0x3A)]
    digits = [i for i, b in enumerate(result[:600]) if 48 <= b <= 57]
    for _ in range(draw(st.integers(1, 3))):
        if not result:
            break
        kind = draw(st.sampled_from(["digit", "separator", "value", "truncate", "payload"]))
        if kind == "digit" and digits:
            result[draw(st.sampled_from(digits)) % len(result)] = draw(st.integers(48, 57))
        elif kind == "separator" and separators:
            pos = draw(st.sampled_from(separators)) % len(result)
            result[pos] = draw(st.sampled_from([0x1C, 0x1D, 0x1E, 0x1F, 0x3A, 0x41]))
        elif kind == "value":
            pos = draw(st.integers(0, min(len(result), 600) - 1))
            result[pos : pos + draw(st.integers(0, 6))] = draw(st.binary(max_size=6))
        elif kind == "truncate":
            del result[draw(st.integers(0, len(result) - 1)) :]
        else:
            pos = draw(st.integers(0, len(result) - 1))
            result[pos] = draw(st.integers(0, 255))
    return bytes(result)


@FUZZ
@given(mutations(_VALID), st.sampled_from(["int-i", "ansi-nist"]))
def test_mutated_transactions_give_an_answer_or_a_prum_error(data: bytes, profile: str) -> None:
    _read_bounded(data, profile)


@FUZZ
@given(mutations(_LOSSLESS))
def test_mutated_lossless_jpeg_records_give_an_answer_or_a_prum_error(data: bytes) -> None:
    _read_bounded(data, "int-i")


@FUZZ
@given(st.binary(max_size=300).map(lambda tail: b"1.001:" + tail))
def test_random_bytes_after_a_nist_start_give_only_prum_errors(data: bytes) -> None:
    assert _read_bounded(data, "ansi-nist") is None


@FUZZ
@given(st.integers(0, len(_VALID) - 1))
def test_every_truncation_is_a_prum_error(cut: int) -> None:
    assert _read_bounded(_VALID[:cut], "int-i") is None
