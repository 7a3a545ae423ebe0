"""The image formats of the API contract, named once for the decoder and every message."""

# Pillow's names for the five formats the contract accepts; nothing else is decoded.
ALLOWED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")

# "PNG, JPEG, GIF, BMP or WEBP": how messages name them.
SUPPORTED_TEXT = ", ".join(ALLOWED_FORMATS[:-1]) + " or " + ALLOWED_FORMATS[-1]

# Their content types: the page's file picker and messages about raw bodies.
CONTENT_TYPES = tuple(f"image/{name.lower()}" for name in ALLOWED_FORMATS)
CONTENT_TYPES_TEXT = ", ".join(CONTENT_TYPES)
