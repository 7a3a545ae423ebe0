"""The success answer's details that the API tests read only loosely: the rounding of
the probabilities and the scores, "unsure" at exactly the threshold, and the preview
PNG written by hand (checked chunk by chunk, as a strict decoder would)."""
import base64
import struct
import zlib

import numpy as np

from app.api import UNSURE_BELOW, describe, png_data_url, rounded


class Named:  # describe() only reads the model's identity
    identity = {"name": "t"}


def answer(probabilities, not_digit=0.0, preprocess_ms=1.0, model_ms=2.0):
    pixels = np.zeros((28, 28), np.uint8)
    return describe(np.asarray(probabilities, np.float64), True, not_digit, pixels, Named, preprocess_ms, model_ms)


def test_rounded_probabilities_sum_to_one_the_top_one_taking_the_rest():
    out = rounded(np.array([0.1111114, 0.1111114, 0.7777772]))
    assert out.tolist() == [0.111111, 0.111111, 0.777778]
    assert rounded(np.array([2.0, 1.0, 1.0])).tolist() == [0.5, 0.25, 0.25]  # normalised first


def test_unsure_is_decided_at_exactly_the_threshold():
    top = np.zeros(10)
    top[4], top[7] = UNSURE_BELOW, 1 - UNSURE_BELOW  # sums to 1 exactly: the share is exactly the threshold
    assert answer(top)["unsure"] is False
    top[7] += 1e-12  # the top share now just below the threshold
    assert answer(top)["unsure"] is True


def test_scores_and_timings_are_rounded_for_reading():
    out = answer(np.eye(10)[2], not_digit=0.123456, preprocess_ms=1.23456, model_ms=2.34667)
    assert out["not_digit_score"] == 0.1235
    assert out["elapsed_ms"] == 3.58
    assert out["timings_ms"] == {"decode_and_preprocess": 1.23, "model": 2.35}


def chunks(png):
    """(type, data) of every chunk, checking each length and CRC."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    at, found = 8, []
    while at < len(png):
        (length,) = struct.unpack(">I", png[at:at + 4])
        kind, data = png[at + 4:at + 8], png[at + 8:at + 8 + length]
        (crc,) = struct.unpack(">I", png[at + 8 + length:at + 12 + length])
        assert crc == zlib.crc32(kind + data), kind
        found.append((kind, data))
        at += 12 + length
    return found


def test_preview_is_a_valid_greyscale_png_of_the_pixels():
    pixels = np.arange(28 * 28, dtype=np.uint16).reshape(28, 28) % 256
    url = png_data_url(pixels.astype(np.uint8))
    assert url.startswith("data:image/png;base64,")
    found = chunks(base64.b64decode(url.split(",", 1)[1]))
    assert [kind for kind, _ in found] == [b"IHDR", b"IDAT", b"IEND"]
    # 28x28, 8 bits, greyscale, deflate, adaptive filtering, no interlace
    assert found[0][1] == struct.pack(">IIBBBBB", 28, 28, 8, 0, 0, 0, 0)
    rows = np.frombuffer(zlib.decompress(found[1][1]), np.uint8).reshape(28, 29)
    assert (rows[:, 0] == 0).all()  # filter type "none" on every scanline
    np.testing.assert_array_equal(rows[:, 1:], pixels)
    assert found[2][1] == b""
