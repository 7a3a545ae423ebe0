"""Request bodies for the serving benchmarks: what the page and scripts really send.

Drawn with Pillow at the page's canvas size (280x280) so the server does the
same decode and preprocessing work as for a real drawing.
"""
import base64
import json
from dataclasses import dataclass, field
from io import BytesIO

from PIL import Image, ImageDraw

CANVAS = 280
# Strokes of a few digits, in canvas coordinates.
STROKES = {
    "seven": [[(80, 70), (200, 70), (130, 220)]],
    "one": [[(140, 50), (140, 230)]],
    "four": [[(170, 230), (170, 50), (80, 170), (210, 170)]],
    "zero": [[(140, 50), (200, 90), (205, 190), (140, 235), (80, 190), (75, 90), (140, 50)]],
}


def canvas_png(strokes=STROKES["seven"], width=18, style="transparent"):
    """PNG bytes of strokes drawn as a canvas gives them when nothing fills it
    (dark ink on transparent), as the page's pad does ("page": it fills the
    canvas white, then draws black), or as uploads do ("white_on_black",
    "black_on_white")."""
    if style == "transparent":
        image, ink = Image.new("RGBA", (CANVAS, CANVAS), (0, 0, 0, 0)), (0, 0, 0, 255)
    elif style == "page":
        image, ink = Image.new("RGBA", (CANVAS, CANVAS), (255, 255, 255, 255)), (0, 0, 0, 255)
    elif style == "white_on_black":
        image, ink = Image.new("L", (CANVAS, CANVAS), 0), 255
    else:
        image, ink = Image.new("L", (CANVAS, CANVAS), 255), 0
    pen = ImageDraw.Draw(image)
    for line in strokes:
        pen.line(line, fill=ink, width=width, joint="curve")
    return encode(image, "PNG")


def encode(image, fmt, **options):
    out = BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def blank_png():
    return encode(Image.new("RGBA", (CANVAS, CANVAS), (0, 0, 0, 0)), "PNG")


def drawn_jpeg():
    image = Image.new("L", (CANVAS, CANVAS), 255)
    ImageDraw.Draw(image).line(STROKES["four"][0], fill=0, width=16)
    return encode(image, "JPEG", quality=85)


def multipart(field_name, filename, data, content_type="image/png", boundary="benchboundary7d2f"):
    """(body, content type) of a one-file multipart/form-data upload."""
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field_name}\"; "
            f"filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n").encode()
    body = head + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


@dataclass
class Case:
    """One kind of request and the statuses the contract allows for it."""
    name: str
    method: str
    path: str
    body: bytes = b""
    headers: dict = field(default_factory=dict)
    expected: tuple = (200,)
    weight: int = 1


def predict_png_case(png=None):
    png = canvas_png() if png is None else png
    return Case("predict png", "POST", "/predict", png, {"Content-Type": "image/png"}, (200,))


def healthz_case():
    return Case("healthz", "GET", "/healthz", expected=(200,))


def soak_mix(max_body_bytes=5 * 1024 * 1024):
    """Good and bad requests in rough real-life proportions (weights sum to 100)."""
    drawings = [canvas_png(STROKES[name], width=w, style=s) for name, w, s in [
        ("seven", 18, "transparent"), ("one", 8, "transparent"), ("four", 30, "white_on_black"),
        ("zero", 14, "black_on_white")]]
    good_multipart = multipart("image", "digit.png", drawings[0])
    wrong_field = multipart("file", "digit.png", drawings[0])
    data_url = "data:image/png;base64," + base64.b64encode(drawings[2]).decode()
    png = {"Content-Type": "image/png"}
    as_json = {"Content-Type": "application/json"}
    return [
        *[Case(f"png drawing {i}", "POST", "/predict", d, png, (200,), 10) for i, d in enumerate(drawings)],
        Case("multipart", "POST", "/predict", good_multipart[0], {"Content-Type": good_multipart[1]}, (200,), 10),
        Case("json data url", "POST", "/predict", json.dumps({"image": data_url}).encode(), as_json, (200,), 10),
        Case("jpeg", "POST", "/predict", drawn_jpeg(), {"Content-Type": "image/jpeg"}, (200,), 5),
        Case("blank canvas", "POST", "/predict", blank_png(), png, (422,), 8),
        Case("garbage as png", "POST", "/predict", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, png, (400,), 8),
        Case("text/plain", "POST", "/predict", b"seven", {"Content-Type": "text/plain"}, (415,), 4),
        Case("bad base64", "POST", "/predict", b'{"image": "data:image/png;base64,@@@not base64@@@"}',
             as_json, (400,), 5),
        Case("json not object", "POST", "/predict", b"[1, 2, 3]", as_json, (400,), 3),
        Case("wrong field name", "POST", "/predict", wrong_field[0], {"Content-Type": wrong_field[1]}, (400,), 3),
        # Declared oversize, no body sent: refused from the header alone. The
        # connection is closed after it, since the server never got that body.
        Case("declared oversize", "POST", "/predict", b"",
             {"Content-Type": "image/png", "Content-Length": str(max_body_bytes + 1), "Connection": "close"},
             (413,), 2),
        Case("GET /predict", "GET", "/predict", expected=(405,), weight=1),
        healthz_case(),
    ]
