"""ANSI/NIST-ITL transactions and finger images: round trips and refusals."""

from __future__ import annotations

import contextlib
import datetime
import io
import struct
import subprocess
import sys

import nistitl
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from prum.categories.finger.images import (
    decode_image,
    decode_wsq,
    decode_wsq_many,
    encode_wsq,
    resample_to,
    wsq_dimensions,
)
from prum.categories.finger.nist import read_transaction, write_transaction
from prum.categories.finger.types import FingerImage, Minutia, Transaction
from prum.demo.samples import PrintSet
from prum.errors import (
    BadInput,
    BadWsqStream,
    ImageTooLarge,
    ImageTooSmall,
    InvalidFingerData,
    MalformedNistRecord,
    UnknownRecordType,
    UnreadableImage,
)

# WSQ at 0.75 bit/pixel loses detail: measured mean absolute error 3-8 grey levels
# on the FVC prints and the synthetic ridges below; 12 leaves room, a wrong image
# (another finger, a shifted one) is at 40 or more.
WSQ_TOLERANCE = 12.0


def ridges(width: int = 256, height: int = 320, period: float = 9.0, twist: int = 3) -> np.ndarray:
    """A synthetic ridge pattern: concentric ridges ~9 px apart, as at 500 ppi."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    cx, cy = width / 2, height / 2
    angle = np.arctan2(y - cy, x - cx) * 0.5
    wave = np.sin(2 * np.pi * np.hypot(x - cx, y - cy) / period + 2 * np.sin(angle * twist))
    return np.clip(128 + 100 * wave, 0, 255).astype(np.uint8)


def mean_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def tenprint(**changes: object) -> Transaction:
    images = [
        FingerImage(position=p, impression="rolled", ppi=500, pixels=ridges(twist=p))
        for p in (1, 2, 6)
    ]
    fields: dict[str, object] = {
        "tot": "CAR",
        "originating_agency": "ATBKA0001",
        "destination_agency": "DEBKA0001",
        "control_number": "AT-2026-000123",
        "date": datetime.date(2026, 11, 26),
        "text": {"2.018": "MÜLLER,HANS", "2.022": "19800101", "2.045": "A\x1eB"},
        "images": images,
        "minutiae": {
            1: [
                Minutia(x=10.0, y=20.0, angle=1.0, kind="ending", quality=0.5),
                Minutia(x=200.0, y=300.0, angle=6.0, kind="bifurcation", quality=1.0),
                Minutia(x=0.0, y=0.0, angle=0.0, kind="other", quality=0.1),
            ]
        },
        "latent": False,
    }
    fields.update(changes)
    return Transaction(**fields)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def valid_file() -> bytes:
    return write_transaction(tenprint())


# --- round trips ------------------------------------------------------------------


@pytest.mark.parametrize("finger_record", [14, 4])
def test_round_trip_keeps_header_text_and_images(finger_record: int) -> None:
    sent = tenprint()
    received = read_transaction(write_transaction(sent, finger_record=finger_record))
    assert (received.tot, received.originating_agency, received.destination_agency) == (
        "CAR",
        "ATBKA0001",
        "DEBKA0001",
    )
    assert received.control_number == sent.control_number
    assert received.date == sent.date
    assert received.text == sent.text
    assert received.latent is False
    assert [(i.position, i.impression, i.ppi) for i in received.images] == [
        (1, "rolled", 500),
        (2, "rolled", 500),
        (6, "rolled", 500),
    ]
    for before, after in zip(sent.images, received.images, strict=True):
        assert after.pixels.shape == before.pixels.shape
        assert mean_error(before.pixels, after.pixels) < WSQ_TOLERANCE


def test_round_trip_images_are_not_swapped() -> None:
    received = read_transaction(write_transaction(tenprint()))
    assert mean_error(received.images[0].pixels, ridges(twist=2)) > 3 * WSQ_TOLERANCE


def test_round_trip_keeps_minutiae_within_quantisation() -> None:
    sent = tenprint()
    received = read_transaction(write_transaction(sent))
    assert list(received.minutiae) == [1]
    for before, after in zip(sent.minutiae[1], received.minutiae[1], strict=True):
        # Type-9 stores 0.01 mm (0.2 px at 500 ppi), whole degrees and quality in 63rds.
        assert after.x == pytest.approx(before.x, abs=0.2)
        assert after.y == pytest.approx(before.y, abs=0.2)
        assert after.angle == pytest.approx(before.angle, abs=0.01)
        assert after.kind == before.kind
        assert after.quality == pytest.approx(max(before.quality, 2 / 63), abs=1 / 63)


def test_latent_goes_to_type13_and_palm_to_type15() -> None:
    latent = FingerImage(position=0, impression="latent", ppi=500, pixels=ridges())
    palm = FingerImage(position=22, impression="palm", ppi=500, pixels=ridges(twist=5))
    data = write_transaction(tenprint(images=[latent, palm], minutiae={}, tot="LFS"))
    message = nistitl.Message()
    message.parse(data)
    assert [record.type for record in message] == [1, 2, 13, 15]
    received = read_transaction(data)
    assert received.latent is True
    assert [(i.position, i.impression) for i in received.images] == [(0, "latent"), (22, "palm")]


def test_images_at_1000_ppi_are_resampled_to_500() -> None:
    fine = np.repeat(np.repeat(ridges(), 2, axis=0), 2, axis=1)
    image = FingerImage(position=3, impression="plain", ppi=1000, pixels=fine)
    received = read_transaction(write_transaction(tenprint(images=[image], minutiae={})))
    assert received.images[0].ppi == 500
    assert received.images[0].pixels.shape == (320, 256)
    assert mean_error(received.images[0].pixels, ridges()) < WSQ_TOLERANCE


def test_written_file_parses_with_nistitl(valid_file: bytes) -> None:
    message = nistitl.Message()
    message.parse(valid_file)
    assert [record.type for record in message] == [1, 2, 14, 14, 14, 9]
    assert message[0].TOT == "CAR"


def test_reads_a_type4_file_written_by_nistitl() -> None:
    message = _nistitl_header("TPIS")
    record = nistitl.BinaryRecord(4)
    record.IDC = 1
    record.pack("!B6sBHHB", 3, b"\x07" + b"\xff" * 5, 0, 256, 320, 1, encode_wsq(ridges()))
    message += record
    received = read_transaction(message.NIST)
    assert received.tot == "TPIS"
    assert received.date == datetime.date(2026, 1, 2)
    assert [(i.position, i.impression) for i in received.images] == [(7, "rolled")]


def _nistitl_header(tot: str) -> nistitl.Message:
    message = nistitl.Message()
    message.TOT = tot
    header = message[0]
    header.DAT, header.ORI, header.DAI, header.TCN = "20260102", "FRPJ00001", "ATBKA0001", "7"
    return message


def test_reads_an_uncompressed_type4_record() -> None:
    message = _nistitl_header("TPIS")
    record = nistitl.BinaryRecord(4)
    record.IDC = 1
    record.pack("!B6sBHHB", 0, b"\x02" + b"\xff" * 5, 0, 256, 320, 0, ridges().tobytes())
    message += record
    received = read_transaction(message.NIST)
    assert [(i.position, i.impression) for i in received.images] == [(2, "plain")]
    assert np.array_equal(received.images[0].pixels, ridges())


def test_reads_a_1000_ppi_latent_as_500_ppi() -> None:
    message = _nistitl_header("LFS")
    record = nistitl.AsciiRecord(13)
    record.IDC = 1
    fine = np.repeat(np.repeat(ridges(), 2, axis=0), 2, axis=1)
    record.IMP, record.SRC, record.LCD = "4", "FRPJ00001", "20260101"
    record.HLL, record.VLL, record.SLC, record.THPS, record.TVPS = "512", "640", "1", "1000", "1000"
    record.CGA, record.BPX, record.FGP = "NONE", "8", "0"
    record.DATA = fine.tobytes()
    message += record
    received = read_transaction(message.NIST)
    assert received.latent is True
    image = received.images[0]
    assert (image.impression, image.ppi, image.pixels.shape) == ("latent", 500, (320, 256))
    assert mean_error(image.pixels, ridges()) < 2


@pytest.mark.realdata
def test_real_print_survives_the_round_trip(prints: PrintSet) -> None:
    real = decode_image(prints.prints[0].path.read_bytes())
    image = FingerImage(position=1, impression="plain", ppi=500, pixels=real.pixels)
    received = read_transaction(write_transaction(tenprint(images=[image], minutiae={})))
    assert mean_error(received.images[0].pixels, real.pixels) < WSQ_TOLERANCE


# --- refusals: lying and broken files -----------------------------------------------


def _record_offsets(data: bytes) -> list[int]:
    """Start of each record of a file whose records are all tagged."""
    offsets, pos = [], 0
    while pos < len(data):
        offsets.append(pos)
        length = int(data[pos:].split(b":", 1)[1].split(b"\x1d", 1)[0])
        pos += length
    return offsets


def _set_len(data: bytes, record: int, new_length: bytes) -> bytes:
    start = _record_offsets(data)[record]
    head, rest = data[start:].split(b":", 1)
    _old_length, tail = rest.split(b"\x1d", 1)
    return data[:start] + head + b":" + new_length + b"\x1d" + tail


def test_len_larger_than_the_file_is_refused_naming_record_and_field(valid_file: bytes) -> None:
    length = int(valid_file[_record_offsets(valid_file)[-1] :].split(b":")[1].split(b"\x1d")[0])
    with pytest.raises(MalformedNistRecord) as info:
        read_transaction(_set_len(valid_file, -1, str(length + 50).encode()))
    assert info.value.details["field"] == "9.001"
    assert info.value.details["record"] == 6
    assert "record 6 (Type-9)" in info.value.message


def test_len_smaller_than_the_record_is_refused(valid_file: bytes) -> None:
    with pytest.raises(MalformedNistRecord) as info:
        read_transaction(_set_len(valid_file, 1, b"30"))
    assert info.value.details["record"] == 2


def test_len_pointing_into_the_next_record_is_refused(valid_file: bytes) -> None:
    offsets = _record_offsets(valid_file)
    type2_length = offsets[2] - offsets[1]
    # Still ends on a separator: the whole next record swallowed into Type-2.
    swallowed = type2_length + (offsets[3] - offsets[2])
    with pytest.raises(MalformedNistRecord):
        read_transaction(_set_len(valid_file, 1, str(swallowed).encode()))


def test_non_numeric_length_is_refused(valid_file: bytes) -> None:
    with pytest.raises(MalformedNistRecord) as info:
        read_transaction(_set_len(valid_file, 1, b"12x4"))
    assert "is not a number" in info.value.message
    assert info.value.details["field"] == "2.001"


def test_truncated_file_is_refused(valid_file: bytes) -> None:
    for cut in (10, len(valid_file) // 2, len(valid_file) - 1):
        with pytest.raises(MalformedNistRecord):
            read_transaction(valid_file[:cut])


def test_bytes_after_the_last_record_are_refused(valid_file: bytes) -> None:
    with pytest.raises(MalformedNistRecord) as info:
        read_transaction(valid_file + b"2.001:20\x1d2.002:0\x1c")
    assert info.value.details["field"] == "1.003"


def test_cnt_counting_more_records_than_listed_is_refused(valid_file: bytes) -> None:
    broken = valid_file.replace(b"1.003:1\x1f5\x1e", b"1.003:1\x1f6\x1e", 1)
    assert broken != valid_file
    with pytest.raises(MalformedNistRecord) as info:
        read_transaction(_fix_type1_len(broken))
    assert info.value.details["field"] == "1.003"


def test_cnt_listing_a_missing_record_is_refused(valid_file: bytes) -> None:
    broken = valid_file.replace(b"1.003:1\x1f5\x1e", b"1.003:1\x1f6\x1e", 1).replace(
        b"\x1e9\x1f1\x1d", b"\x1e9\x1f1\x1e2\x1f0\x1d", 1
    )
    with pytest.raises(MalformedNistRecord) as info:
        read_transaction(_fix_type1_len(broken))
    assert "CNT" in info.value.message


def test_cnt_with_wrong_idc_is_refused(valid_file: bytes) -> None:
    broken = valid_file.replace(b"\x1e14\x1f1\x1e", b"\x1e14\x1f7\x1e", 1)
    assert broken != valid_file
    with pytest.raises(MalformedNistRecord) as info:
        read_transaction(broken)
    assert info.value.details["field"] == "14.002"


def test_unknown_record_type_is_refused(valid_file: bytes) -> None:
    broken = valid_file.replace(b"\x1e9\x1f1\x1d", b"\x1e10\x1f1\x1d", 1)
    assert broken != valid_file
    with pytest.raises(UnknownRecordType) as info:
        read_transaction(_fix_type1_len(broken))
    assert info.value.details == {"record": 6, "type": 10}


def test_record_type_other_than_cnt_says_is_refused(valid_file: bytes) -> None:
    broken = valid_file.replace(b"\x1e9\x1f1\x1d", b"\x1e13\x1f1\x1d", 1)
    with pytest.raises(MalformedNistRecord) as info:
        read_transaction(_fix_type1_len(broken))
    assert "Type-13" in info.value.message and "Type-9" in info.value.message


def _fix_type1_len(data: bytes) -> bytes:
    """Recompute 1.001 after editing Type-1 (so only the edit itself is wrong)."""
    end = data.index(b"\x1c") + 1
    body = data[:end].split(b"\x1d", 1)[1]
    for size in range(len(body), len(body) + 12):
        head = b"1.001:%d\x1d" % size
        if len(head) + len(body) == size:
            return head + body + data[end:]
    raise AssertionError("no consistent length")


def test_corrupt_wsq_in_a_record_is_refused_naming_the_record(valid_file: bytes) -> None:
    start = valid_file.index(b"14.999:") + len(b"14.999:")
    broken = bytearray(valid_file)
    broken[start + 200 : start + 240] = b"\xff" * 40
    with pytest.raises(BadWsqStream) as info:
        read_transaction(bytes(broken))
    assert "record 3 (Type-14) field 14.999" in info.value.message


def test_image_size_disagreeing_with_the_record_is_refused(valid_file: bytes) -> None:
    broken = valid_file.replace(b"14.006:256\x1d", b"14.006:255\x1d", 1)
    with pytest.raises(MalformedNistRecord) as info:
        read_transaction(broken)
    assert info.value.details["field"] == "14.006"


def test_minutiae_count_disagreeing_with_the_list_is_refused(valid_file: bytes) -> None:
    start = _record_offsets(valid_file)[-1]
    record = valid_file[start:].replace(b"9.010:3\x1d", b"9.010:4\x1d", 1)
    with pytest.raises(MalformedNistRecord) as info:
        read_transaction(valid_file[:start] + record)
    assert info.value.details["field"] == "9.012"


def test_bad_date_is_refused(valid_file: bytes) -> None:
    broken = valid_file.replace(b"1.005:20261126", b"1.005:20261326", 1)
    with pytest.raises(MalformedNistRecord) as info:
        read_transaction(broken)
    assert info.value.details["field"] == "1.005"


def test_not_a_nist_file_is_refused() -> None:
    for data in (b"", b"GIF89a", b"1.001:", b"1.001:abc\x1d"):
        with pytest.raises(MalformedNistRecord):
            read_transaction(data)


def test_writer_refuses_separators_in_text() -> None:
    with pytest.raises(InvalidFingerData):
        write_transaction(tenprint(text={"2.018": "A\x1dB"}))


def test_writer_refuses_minutiae_without_their_image() -> None:
    minutia = Minutia(x=1.0, y=1.0, angle=0.0, kind="ending")
    with pytest.raises(InvalidFingerData):
        write_transaction(tenprint(minutiae={9: [minutia]}))


# --- fuzzing: nothing but our own errors, no crash, no hang -------------------------

FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes_give_only_prum_errors(data: bytes) -> None:
    with contextlib.suppress(BadInput):
        read_transaction(data)


@FUZZ
@given(st.binary(max_size=300).map(lambda tail: b"1.001:" + tail))
def test_random_bytes_after_a_nist_start_give_only_prum_errors(data: bytes) -> None:
    with contextlib.suppress(BadInput):
        read_transaction(data)


@st.composite
def mutations(draw: st.DrawFn, data: bytes) -> bytes:
    result = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "delete", "digit"]))
        pos = draw(st.integers(0, len(result) - 1))
        if kind == "flip":
            result[pos] = draw(st.integers(0, 255))
        elif kind == "cut":
            del result[pos:]
        elif kind == "insert":
            result[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del result[pos : pos + draw(st.integers(1, 8))]
        else:  # a digit changed: lengths, counts and sizes lie
            digits = [i for i, b in enumerate(result[:2000]) if 48 <= b <= 57]
            if digits:
                result[draw(st.sampled_from(digits))] = draw(st.integers(48, 57))
        if not result:
            break
    return bytes(result)


_SMALL_FILE = write_transaction(
    tenprint(
        images=[FingerImage(position=1, impression="rolled", ppi=500, pixels=ridges(96, 96))],
        minutiae={1: [Minutia(x=5.0, y=6.0, angle=0.5, kind="ending")]},
    )
)


@FUZZ
@given(mutations(_SMALL_FILE))
def test_mutated_files_give_a_transaction_or_prum_errors(data: bytes) -> None:
    try:
        transaction = read_transaction(data)
    except BadInput:
        return
    assert isinstance(transaction, Transaction)


# --- images -----------------------------------------------------------------------


def test_wsq_round_trip_within_tolerance() -> None:
    pixels = ridges()
    decoded = decode_image(encode_wsq(pixels))
    assert decoded.format == "WSQ"
    assert decoded.ppi == 500
    assert decoded.pixels.shape == pixels.shape
    assert mean_error(decoded.pixels, pixels) < WSQ_TOLERANCE


def test_wsq_compresses_about_as_the_fbi_rate_says() -> None:
    # 0.75 bit/pixel would be 7,680 bytes for 256 x 320; headers and tables add some.
    size = len(encode_wsq(ridges()))
    assert 2_000 < size < 12_000


def test_wsq_header_gives_dimensions_without_decoding() -> None:
    assert wsq_dimensions(encode_wsq(ridges(200, 150))) == (200, 150)


def test_stream_that_kills_the_c_decoder_is_refused_in_process() -> None:
    # Found by mutation: this single byte makes NBIS's decoder write out of bounds.
    broken = bytearray(encode_wsq(ridges()))
    broken[600] = 143
    child = subprocess.run(
        [sys.executable, "-I", "-c", "import sys, _wsq; _wsq.decompress(sys.stdin.buffer.read())"],
        input=bytes(broken),
        capture_output=True,
        check=False,
    )
    assert child.returncode != 0, "the C decoder no longer crashes here: pick another byte"
    with pytest.raises(BadWsqStream):
        decode_wsq(bytes(broken))


def test_truncated_wsq_is_refused() -> None:
    with pytest.raises(BadWsqStream):
        decode_image(encode_wsq(ridges())[:3000])


def test_many_wsq_streams_name_the_bad_one() -> None:
    good = encode_wsq(ridges())
    with pytest.raises(BadWsqStream) as info:
        decode_wsq_many([good, good[:3000], good])
    assert info.value.details["index"] == 1


def test_raw_grayscale_needs_matching_size() -> None:
    pixels = ridges(100, 80)
    decoded = decode_image(pixels.tobytes(), width=100, height=80)
    assert np.array_equal(decoded.pixels, pixels)
    with pytest.raises(UnreadableImage):
        decode_image(pixels.tobytes(), width=100, height=81)
    with pytest.raises(UnreadableImage):
        decode_image(pixels.tobytes(), width=100)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_png_and_tiff_decode_to_grayscale() -> None:
    rgb = Image.fromarray(ridges()).convert("RGB")
    assert decode_image(_png(rgb)).pixels.shape == (320, 256)
    buffer = io.BytesIO()
    Image.fromarray(ridges()).save(buffer, "TIFF", dpi=(1000, 1000))
    decoded = decode_image(buffer.getvalue())
    assert (decoded.format, decoded.ppi) == ("TIFF", 1000)
    assert np.array_equal(decoded.pixels, ridges())


def test_sixteen_bit_image_is_scaled_to_eight_bits() -> None:
    wide = (ridges().astype(np.uint16) * 257).astype(np.uint16)
    decoded = decode_image(_png(Image.fromarray(wide)))
    assert decoded.pixels.dtype == np.uint8
    assert np.array_equal(decoded.pixels, ridges())


def test_tiny_and_huge_images_are_refused() -> None:
    with pytest.raises(ImageTooSmall):
        decode_image(_png(Image.new("L", (40, 300))))
    with pytest.raises(ImageTooLarge):
        decode_image(_png(Image.new("L", (17_000, 100))))
    huge_raw_header = struct.pack("!HH", 20_000, 20_000)
    with pytest.raises(ImageTooLarge):
        decode_image(b"\xff\xa0\xff\xa2\x00\x11\x00\x00" + huge_raw_header + b"\x00" * 20)


def test_garbage_is_refused_as_unreadable() -> None:
    with pytest.raises(UnreadableImage):
        decode_image(b"this is not an image at all")
    with pytest.raises(UnreadableImage):
        decode_image(b"")


def test_resample_halves_a_1000_ppi_image() -> None:
    fine = np.repeat(np.repeat(ridges(), 2, axis=0), 2, axis=1)
    assert resample_to(fine, 1000).shape == (320, 256)
    assert np.array_equal(resample_to(ridges(), 500), ridges())
    assert resample_to(ridges(), 250).shape == (640, 512)
