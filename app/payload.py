"""Find the uploaded image's bytes in a request, whichever of the three forms it uses.

The forms (multipart field `image`, raw image body, JSON with a data URL or
bare base64) differ only in how the bytes travel; everything after this module
sees plain bytes. Content types are checked here, image formats in imaging.
"""
import base64
import binascii
import json
import re

from flask import current_app
from werkzeug.exceptions import RequestEntityTooLarge

from .errors import BadInput, Unsupported, body_too_large
from .formats import CONTENT_TYPES_TEXT, SUPPORTED_TEXT

RAW_IMAGE_TYPES = {
    "image/png", "image/x-png",
    "image/jpeg", "image/jpg", "image/pjpeg",
    "image/gif",
    "image/bmp", "image/x-bmp", "image/x-ms-bmp",
    "image/webp",
}

_DATA_URL = re.compile(r"^data:(?P<mime>[^;,]*)(?P<params>(;[^;,]*)*),(?P<data>.*)$", re.DOTALL)
_WHITESPACE = re.compile(r"\s+")


def image_bytes(request):
    """Return the image bytes sent with `request`, or raise an ApiError saying what to fix."""
    return image_and_fields(request)[0]


def image_and_fields(request, names=()):
    """(image bytes, {name: value or None}): the named fields travel the way the image
    does: multipart form fields, keys of the JSON object, or query parameters beside
    a raw image body."""
    mimetype = request.mimetype  # lower-cased, parameters stripped
    if mimetype == "multipart/form-data":
        data = _from_multipart(request)
        return data, {name: request.form.get(name) for name in names}
    if mimetype in RAW_IMAGE_TYPES or mimetype == "application/octet-stream":
        return _from_raw(request), {name: request.args.get(name) for name in names}
    if mimetype == "application/json" or mimetype.endswith("+json"):
        data, body = _from_json(request)
        return data, {name: body.get(name) for name in names}
    if not mimetype and not read_body(request):
        raise BadInput("No image was sent; POST an image file, e.g. curl -F image=@digit.png .../predict.")
    if mimetype.startswith("image/"):
        raise Unsupported(f"{mimetype} is not supported; send {SUPPORTED_TEXT}.")
    shown = mimetype or "no Content-Type"
    raise Unsupported(f"Cannot read an image from {shown}; send multipart/form-data with field 'image', "
                      f"a raw body with Content-Type {CONTENT_TYPES_TEXT}, or JSON "
                      f"{{\"image\": \"data:image/png;base64,...\"}}.")


def refuse_declared_oversize(request):
    """413 before a byte is read when Content-Length already says the body is too long."""
    limit = current_app.config["MAX_BODY_BYTES"]
    if request.content_length is not None and request.content_length > limit:
        raise body_too_large(limit, request.content_length)


def read_body(request):
    """The whole body, refused with 413 once it passes MAX_BODY_BYTES.

    Werkzeug caps a body without Content-Length (chunked) at the limit but
    `get_data()` then returns it silently truncated; reading in pieces and
    counting tells "exactly this long" from "longer than allowed".
    """
    limit = current_app.config["MAX_BODY_BYTES"]
    stream = request.stream
    if request.content_length is None and request.environ.get("wsgi.input_terminated"):
        # Werkzeug's capped stream raises on any read once `limit` bytes are in, so a
        # chunked body of exactly the limit would be refused; the server's own stream
        # ends where the body does, and the count below caps it.
        stream = request.environ["wsgi.input"]
    chunks, total = [], 0
    while True:
        chunk = stream.read(64 * 1024)
        if not chunk:
            break
        total += len(chunk)
        if total > limit:
            raise body_too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _from_raw(request):
    data = read_body(request)
    if not data:
        raise BadInput("The request body is empty; send the image bytes as the body.")
    return data


def _from_multipart(request):
    try:
        files, form = request.files, request.form
    except RequestEntityTooLarge:
        limit = current_app.config["MAX_BODY_BYTES"]
        if request.content_length is not None and request.content_length <= limit:
            # Within the byte limit, so Werkzeug counted too many parts.
            raise BadInput(f"The form has more than {current_app.config['MAX_FORM_PARTS']} parts; "
                           f"send one file in the field named 'image'.") from None
        raise body_too_large(limit) from None
    upload = files.get("image")
    if upload is not None:
        data = upload.read()
        if not data:
            raise BadInput(f"The file in field 'image' is empty; attach a {SUPPORTED_TEXT} file.")
        return data
    text = form.get("image")
    if text:
        return decode_base64_image(text)
    got = sorted(name for name in set(files) | set(form) if name)  # a part may have no name
    hint = f" (got {', '.join(repr(name) for name in got)})" if got else ""
    raise BadInput(f"The form field must be named 'image'{hint}; e.g. curl -F image=@digit.png .../predict.")


def _from_json(request):
    raw = read_body(request)
    if not raw:
        raise BadInput('The JSON body is empty; send {"image": "data:image/png;base64,..."}.')
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadInput('The body is not valid JSON; send {"image": "data:image/png;base64,..."}.') from None
    except RecursionError:
        raise BadInput('The JSON is nested too deeply; send {"image": "data:image/png;base64,..."}.') from None
    if not isinstance(body, dict):
        raise BadInput('The JSON body must be an object like {"image": "data:image/png;base64,..."}.')
    if "image" not in body:
        raise BadInput('The JSON object has no "image" key; send {"image": "data:image/png;base64,..."}.')
    if not isinstance(body["image"], str) or not body["image"].strip():
        raise BadInput('"image" must be a non-empty string: a data URL or base64 of the image file.')
    return decode_base64_image(body["image"]), body


def decode_base64_image(text):
    """Bytes from a data URL (`data:image/png;base64,...`) or bare base64 text."""
    text = text.strip()
    if text[:5].lower() == "data:":
        match = _DATA_URL.match(text)
        if not match:
            raise BadInput("The data URL is malformed; expected data:image/png;base64,<data>.")
        mime = match["mime"].strip().lower()
        params = [p.strip().lower() for p in match["params"].split(";") if p.strip()]
        if mime and mime not in RAW_IMAGE_TYPES:
            raise Unsupported(f"The data URL holds {mime}, not a supported image; send {SUPPORTED_TEXT}.")
        if "base64" not in params:
            raise BadInput("The data URL must be base64-encoded (data:image/png;base64,...).")
        text = match["data"]
    return _b64decode(text)


def _b64decode(text):
    compact = _WHITESPACE.sub("", text)
    if not compact:
        raise BadInput("The base64 image data is empty.")
    altchars = b"-_" if ("-" in compact or "_" in compact) else None
    compact += "=" * (-len(compact) % 4)
    try:
        data = base64.b64decode(compact, altchars=altchars, validate=True)
    except (binascii.Error, ValueError):
        raise BadInput("The image is not valid base64; encode the file's bytes with base64.") from None
    if not data:
        raise BadInput("The base64 image data is empty.")
    return data
