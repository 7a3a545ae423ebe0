"""The lean preprocessing (ink found at 8 bits, float work on the ink's window
only) must give the same 28x28 digits as the code it replaced, kept frozen in
tests/preprocess_reference.py: same blank/not-blank verdicts, same pixels.

The cases cover what reaches /predict: canvas drawings of every stroke-font
digit in every style (position, size, pen), each polarity and alpha layout,
ink touching the border (where the window meets the image edge), thin lines
(where the speck filter and the block-average blank check look beyond the
window), noisy and JPEG images (non-uniform border: the whole-image path),
other modes and sizes, faint and blank images.
"""
import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from app import preprocess as lean
from tests import preprocess_reference as reference
from tools import strokes


def encoded(image, fmt="PNG", **options):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    decoded = Image.open(io.BytesIO(buffer.getvalue()))
    decoded.load()
    return decoded


def font_canvas(digit, variant, ink, seed):
    paths, brush = strokes.font_paths(digit, np.random.default_rng(seed), variant)
    return Image.fromarray(strokes.render_segments(strokes.paths_to_segments(paths), brush, ink), "RGBA")


def line_image(size, points, width, mode="L", background=255, ink=0):
    image = Image.new(mode, size, background)
    ImageDraw.Draw(image).line(points, fill=ink, width=width)
    return image


def canvases():
    """(name, PIL image) pairs: a varied, deterministic set."""
    cases = []
    for digit in range(10):
        for i, variant in enumerate(strokes.VARIANTS):
            ink = ("black", "transparent", "white")[(digit + i) % 3]
            cases.append((f"font {digit} {variant} {ink}", font_canvas(digit, variant, ink, seed=digit * 7 + i)))
    seven = font_canvas(7, "default", "transparent", seed=3)
    rgba = np.asarray(seven).copy()
    hidden = rgba[..., 3] == 0
    rgba[hidden, :3] = np.random.default_rng(0).integers(0, 256, (int(hidden.sum()), 3), dtype=np.uint8)
    cases.append(("random rgb under alpha 0", Image.fromarray(rgba, "RGBA")))
    white_ink = np.asarray(seven).copy()
    white_ink[..., :3] = 255
    cases.append(("white ink on transparent", Image.fromarray(white_ink, "RGBA")))
    cases.append(("canvas png roundtrip", encoded(seven)))
    cases.append(("LA", seven.convert("LA")))
    cases.append(("grey paper blue ink", Image.fromarray(np.rint(
        np.array([200, 190, 170]) * (1 - np.asarray(seven)[..., 3:] / 255)
        + np.array([20, 40, 160]) * np.asarray(seven)[..., 3:] / 255).astype(np.uint8), "RGB")))
    opaque = Image.new("RGBA", seven.size, (255, 255, 255, 255))
    opaque.alpha_composite(seven)
    cases.append(("opaque rgba", opaque))
    # ink touching the image edge: the window meets the border
    cases.append(("line on left edge 1px", line_image((280, 280), [(0, 40), (0, 240)], 1)))
    cases.append(("line on top edge 3px", line_image((280, 280), [(20, 1), (260, 1)], 3)))
    cases.append(("corner stroke", line_image((280, 280), [(0, 0), (120, 200)], 9)))
    cases.append(("hairline seven", line_image((280, 280), [(60, 50), (220, 50), (120, 240)], 1)))
    cases.append(("fat brush one", line_image((280, 280), [(140, 40), (140, 240)], 60)))
    cases.append(("thin pen zero", line_image((280, 280), [(140, 40), (200, 140), (140, 240), (80, 140),
                                                           (140, 40)], 3)))
    cases.append(("single dot", line_image((280, 280), [(140, 140), (141, 141)], 4)))
    cases.append(("faint grey stroke", line_image((280, 280), [(60, 60), (200, 220)], 6, background=255, ink=225)))
    cases.append(("very faint", line_image((280, 280), [(60, 60), (200, 220)], 6, background=255, ink=245)))
    cases.append(("faint hairline", line_image((280, 280), [(60, 60), (200, 220)], 1, background=255, ink=215)))
    cases.append(("odd size 97x301", line_image((97, 301), [(20, 30), (70, 30), (40, 280)], 5)))
    cases.append(("tiny 12x12", line_image((12, 12), [(5, 2), (5, 9)], 2)))
    cases.append(("sliver 5x40", line_image((5, 40), [(2, 5), (2, 35)], 1)))
    cases.append(("huge 2000x1500", line_image((2000, 1500), [(500, 300), (1500, 300), (900, 1300)], 30)))
    # non-uniform borders: the whole-image path
    rng = np.random.default_rng(5)
    noisy = np.asarray(line_image((280, 280), [(80, 70), (200, 70), (130, 220)], 16), dtype=np.float32)
    noisy = np.clip(noisy + rng.normal(0, 12, noisy.shape), 0, 255).astype(np.uint8)
    cases.append(("sensor noise", Image.fromarray(noisy)))
    cases.append(("jpeg", encoded(line_image((280, 280), [(170, 230), (170, 50), (80, 170), (210, 170)], 16,
                                             mode="RGB", background="white", ink="black"), "JPEG", quality=70)))
    gradient = np.tile(np.linspace(150, 250, 280, dtype=np.float32), (280, 1))
    gradient[60:220, 135:145] = 20
    cases.append(("gradient paper", Image.fromarray(gradient.astype(np.uint8))))
    specks = np.full((280, 280), 255, np.uint8)
    specks[rng.integers(0, 280, 30), rng.integers(0, 280, 30)] = 0
    specks[50:230, 130:140] = 0
    cases.append(("specks", Image.fromarray(specks)))
    cases.append(("blurred", line_image((280, 280), [(80, 70), (200, 70), (130, 220)], 12)
                  .filter(ImageFilter.GaussianBlur(6))))
    sixteen = np.asarray(seven.convert("L"), dtype=np.uint16) * 16
    cases.append(("16 bit", Image.fromarray(sixteen)))
    cases.append(("float", Image.fromarray(np.asarray(seven)[..., 3].astype(np.float32))))
    cases.append(("palette", seven.convert("RGB").convert("P")))
    index = np.where(np.asarray(seven)[..., 3] > 127, 1, 0).astype(np.uint8)
    palette = Image.fromarray(index, "P")
    palette.putpalette([255, 255, 255, 0, 0, 0] + [0] * 762)
    cases.append(("palette transparent index", encoded(palette, "PNG", transparency=0)))
    # blank ones
    cases.append(("blank transparent", Image.new("RGBA", (280, 280), (0, 0, 0, 0))))
    cases.append(("blank white", Image.new("L", (280, 280), 255)))
    cases.append(("blank 1x1", Image.new("L", (1, 1), 0)))
    cases.append(("noise only", Image.fromarray(np.clip(rng.normal(128, 12, (280, 280)), 0, 255).astype(np.uint8))))
    return cases


def outcome(module, image):
    try:
        return module.preprocess(image.copy())
    except module.BlankImageError:
        return "blank"


CASES = canvases()


@pytest.mark.parametrize("name, image", CASES, ids=[name for name, _ in CASES])
def test_same_digit_as_the_reference(name, image):
    expected = outcome(reference, image)
    got = outcome(lean, image)
    verdict = ["blank" if isinstance(x, str) else "digit" for x in (expected, got)]
    assert verdict[1] == verdict[0], f"{name}: the reference says {verdict[0]}, the lean code {verdict[1]}"
    if verdict[0] == "blank":
        return
    assert got.dtype == np.uint8 and got.shape == (28, 28)
    # identical up to float rounding: at most one grey level, on a few pixels
    diff = np.abs(got.astype(int) - expected.astype(int))
    assert diff.max() <= 1, f"{name}: differs by up to {diff.max()} grey levels"
    assert np.count_nonzero(diff) <= 3, f"{name}: {np.count_nonzero(diff)} pixels differ"


def test_the_case_set_exercises_both_paths_and_blank_images():
    """Guards the test itself: windows smaller than the image and whole images both occur."""
    partial = whole = blank = 0
    for _, image in CASES:
        try:
            window = lean._ink_window(image.copy())
        except lean.BlankImageError:
            blank += 1
            continue
        if window.ink.size == 0:
            blank += 1
        elif window.whole:
            whole += 1
        else:
            partial += 1
    assert partial >= 30 and whole >= 4 and blank >= 2


def test_ink_map_is_the_whole_image():
    """Tools get the full-size ink map, zeros outside the window."""
    image = font_canvas(4, "small", "transparent", seed=1)
    full = lean.ink_map(image)
    assert full.shape == (280, 280)
    np.testing.assert_array_equal(full, reference.ink_map(image))
