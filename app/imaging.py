"""Turn untrusted uploaded bytes into a decoded PIL image, or refuse them.

`Image.open` only reads the header; pixels are decoded by `load()`. The
declared size is therefore checked between the two, so an image that would
expand to gigabytes (a decompression bomb) is refused before any pixel is
decoded. Only the five formats of the API contract are ever decoded.

Pillow's own guard (Image.MAX_IMAGE_PIXELS, a process-wide setting left at its
default so other code is unaffected) sits far above our limit; its
DecompressionBombError, raised while reading headers of absurd sizes, is
answered like ours: 413.
"""
import io
import math
import struct
import zlib

from PIL import Image, UnidentifiedImageError

from .errors import BadInput, NoInk, TooLarge, Unsupported
from .formats import ALLOWED_FORMATS, SUPPORTED_TEXT
from .preprocess import BlankImageError, preprocess

# What a corrupt file makes Pillow's parsers and decoders raise: the documented
# ones (OSError, SyntaxError...) and those that leak from a plugin reading
# nonsense fields (KeyError, IndexError...). Any of them means "bad file": 400.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError,
                  AttributeError, NotImplementedError, struct.error, zlib.error)


def _limit_text(max_pixels):
    side = math.isqrt(max_pixels)
    square = f" ({side}x{side})" if side * side == max_pixels else ""
    return f"{max_pixels:,} pixels{square}"


def _too_large(width, height, max_pixels):
    return TooLarge(f"The image is {width}x{height} pixels, over the limit of {_limit_text(max_pixels)}; "
                    f"send a smaller image.")


def check_size(width, height, max_pixels):
    """Refuse a size with no pixels (400) or too many (413). Pillow 13 already
    refuses zero sizes in the five formats' headers; this stays for the next one."""
    if width <= 0 or height <= 0:
        raise BadInput(f"The image is {width}x{height}: it has no pixels; send a valid image.")
    if width * height > max_pixels:
        raise _too_large(width, height, max_pixels)


def _other_format_name(data):
    """Name of a format Pillow knows but we refuse (TIFF, ICO...), or None if unknown."""
    try:
        with Image.open(io.BytesIO(data)) as probe:  # header only, nothing decoded
            return probe.format
    except Exception:  # any failure only means we cannot name it
        return None


def decode_image(data, max_pixels):
    """Decode `data` into a loaded PIL image (first frame if animated).

    Raises BadInput (400) for empty, corrupt or truncated data, Unsupported (415)
    for formats outside the contract, TooLarge (413) for too many pixels.
    """
    if not data:
        raise BadInput(f"The image is empty; send the bytes of a {SUPPORTED_TEXT} file.")
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise TooLarge(f"The image declares far more than {_limit_text(max_pixels)}; send a smaller image.") from None
    except UnidentifiedImageError:
        name = _other_format_name(data)
        if name:
            raise Unsupported(f"{name} images are not supported; send {SUPPORTED_TEXT}.") from None
        raise BadInput(f"The data could not be read as an image; send a {SUPPORTED_TEXT} file.") from None
    except _DECODE_ERRORS:
        raise BadInput(f"The image header is corrupt; send a valid {SUPPORTED_TEXT} file.") from None

    try:  # every refusal below closes the image it opened
        width, height = image.size
        check_size(width, height, max_pixels)
        try:
            image.seek(0)  # animated GIF/WEBP/APNG: the first frame
            image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            # Pillow 13 raises these while opening only; a plugin that checks a frame
            # as it decodes it would land here, and it is still a 413, not a 500.
            raise _too_large(width, height, max_pixels) from None
        except _DECODE_ERRORS:
            raise BadInput(f"The {image.format} image is truncated or corrupt; send the complete file.") from None
    except BaseException:
        image.close()
        raise
    return image


def digit_from_upload(data, max_pixels, blank_message):
    """Uploaded bytes -> the 28x28 the model reads, for every route that takes one digit:
    decoded within the pixel limit, preprocessed, closed either way; no ink is a 422."""
    image = decode_image(data, max_pixels)
    try:
        return preprocess(image)
    except BlankImageError:
        raise NoInk(blank_message) from None
    finally:
        image.close()
