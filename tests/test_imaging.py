"""app/imaging.py on its own: the refusals' wording (the client reads it to fix the
request) and the thinnest images that are still images."""
import pytest
from PIL import Image

from app import imaging
from app.errors import BadInput, TooLarge
from app.formats import SUPPORTED_TEXT
from tests.conftest import encode


def test_empty_data_is_refused_naming_the_formats():
    with pytest.raises(BadInput) as refused:
        imaging.decode_image(b"", 10_000)
    assert refused.value.status == 400
    assert refused.value.message == f"The image is empty; send the bytes of a {SUPPORTED_TEXT} file."


@pytest.mark.parametrize("limit,limit_text", [(10_000, "10,000 pixels (100x100)"), (10_001, "10,001 pixels")])
def test_too_many_pixels_names_the_size_and_the_limit(limit, limit_text):
    """A square limit is also given as its side; any other limit only as a count."""
    data = encode(Image.new("L", (200, 150), 255), "PNG")
    with pytest.raises(TooLarge) as refused:
        imaging.decode_image(data, limit)
    assert refused.value.status == 413
    assert refused.value.message == (f"The image is 200x150 pixels, over the limit of {limit_text}; "
                                     f"send a smaller image.")


@pytest.mark.parametrize("size", [(1, 5), (5, 1), (1, 1)])
def test_one_pixel_wide_or_high_images_are_images(size):
    image = imaging.decode_image(encode(Image.new("L", size, 0), "PNG"), 10_000)
    try:
        assert image.size == size
        assert image.getpixel((0, 0)) == 0
    finally:
        image.close()


@pytest.mark.parametrize("size", [(0, 5), (5, 0), (0, 0), (-3, 5), (5, -3)])
def test_a_size_without_pixels_is_a_bad_image(size):
    """Pillow refuses these headers itself today; the check stays for a plugin that does not."""
    with pytest.raises(BadInput) as refused:
        imaging.check_size(*size, 10_000)
    assert refused.value.status == 400
    assert refused.value.message == f"The image is {size[0]}x{size[1]}: it has no pixels; send a valid image."


@pytest.mark.parametrize("size,limit", [((1, 1), 1), ((100, 100), 10_000), ((1, 10_000), 10_000)])
def test_a_size_at_the_limit_is_accepted(size, limit):
    assert imaging.check_size(*size, limit) is None


@pytest.mark.parametrize("bomb", [Image.DecompressionBombError, Image.DecompressionBombWarning])
def test_a_bomb_found_only_while_decoding_is_a_413_and_the_image_is_closed(monkeypatch, bomb):
    """Fault injection: a Pillow whose decoder, not its header reader, finds the bomb."""
    from PIL import PngImagePlugin
    closed = []

    def load_that_finds_a_bomb(self):
        raise bomb("found while decoding")

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", load_that_finds_a_bomb)
    monkeypatch.setattr(PngImagePlugin.PngImageFile, "close", lambda self: closed.append(self.size))
    with pytest.raises(TooLarge) as refused:
        imaging.decode_image(encode(Image.new("L", (40, 30), 255), "PNG"), 10_000)
    assert refused.value.status == 413
    assert refused.value.message == ("The image is 40x30 pixels, over the limit of 10,000 pixels (100x100); "
                                     "send a smaller image.")
    assert closed == [(40, 30)]
