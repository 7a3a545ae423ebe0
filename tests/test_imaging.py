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
