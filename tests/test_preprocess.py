"""Preprocessing: whatever people hand in must become the 28x28 MNIST digit the
model knows, whatever the polarity, alpha, mode, orientation, size or pen."""
import functools
import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from app import preprocess as preprocess_module
from app.preprocess import MAX_WORK_SIDE, BlankImageError, clean_ink, ink_map, preprocess, stroke_width
from tests.mnist_data import mnist, require_trained
from tools import strokes


def canvas(digit, ink="black", variant="default", seed=0):
    """A stroke-font digit as the page's canvas would hold it, as a PIL RGBA image."""
    paths, brush = strokes.font_paths(digit, np.random.default_rng(seed), variant)
    rgba = strokes.render_segments(strokes.paths_to_segments(paths), brush, ink)
    return Image.fromarray(rgba, "RGBA")


def decode(data):
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def encoded(image, fmt="PNG", **options):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return decode(buffer.getvalue())


def ink_box(digit28):
    rows = np.flatnonzero(digit28.max(axis=1))
    cols = np.flatnonzero(digit28.max(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def center_of_mass(digit28):
    m = digit28.astype(np.float64)
    total = m.sum()
    return (m.sum(axis=1) @ np.arange(28)) / total, (m.sum(axis=0) @ np.arange(28)) / total


def difference(a, b):
    """Mean absolute grey-level difference of two 28x28 digits, seen slightly
    blurred and allowing a shift of up to one pixel in half-pixel steps: the
    centre of mass is placed to the nearest whole pixel, so the same drawing
    handed in another way may land half a pixel off. For scale: two different
    digits of our stroke font differ by 9 or more."""
    def soft(x):
        big = Image.fromarray(x).resize((56, 56), Image.BILINEAR)
        return np.asarray(big.filter(ImageFilter.GaussianBlur(2)), dtype=np.int16)
    a, b = np.pad(soft(a), 2), soft(b)
    return min(float(np.abs(a[2 + dy:58 + dy, 2 + dx:58 + dx] - b).mean())
               for dy in range(-2, 3) for dx in range(-2, 3))


# ---------------------------------------------------------------- output convention

def test_output_is_uint8_28x28_white_ink_on_black():
    out = preprocess(canvas(7))
    assert out.shape == (28, 28) and out.dtype == np.uint8
    assert out.max() == 255
    border = np.concatenate([out[0], out[-1], out[:, 0], out[:, -1]])
    assert border.max() == 0  # background black, digit inside the field


@pytest.mark.parametrize("digit", range(10))
def test_longer_side_of_ink_box_is_20(digit):
    assert max(ink_box(preprocess(canvas(digit, seed=digit)))) == 20


def test_wide_shape_is_scaled_by_its_width_keeping_aspect():
    image = Image.new("L", (280, 280), 255)
    image.paste(0, (20, 120, 260, 170))  # a bar 240 wide, 50 high
    height, width = ink_box(preprocess(image))
    assert width == 20
    assert height < 10


@pytest.mark.parametrize("digit", range(10))
def test_center_of_mass_within_one_pixel_of_center(digit):
    # drawn small in a corner: the placement must move it, not keep it
    cy, cx = center_of_mass(preprocess(canvas(digit, variant="offcenter", seed=digit)))
    assert abs(cy - 13.5) <= 1.0 and abs(cx - 13.5) <= 1.0


@pytest.mark.mnist
def test_center_of_mass_where_mnist_has_it():
    images = mnist()["test_images"][:2000]
    mnist_cy, mnist_cx = np.mean([center_of_mass(d) for d in images], axis=0)
    coms = np.array([center_of_mass(preprocess(canvas(d % 10, variant="offcenter", seed=d))) for d in range(40)])
    assert np.all(np.abs(coms - [mnist_cy, mnist_cx]) <= 0.75)


def test_position_and_size_on_the_canvas_do_not_matter():
    coverage = np.asarray(canvas(3, ink="white").convert("L"), dtype=np.uint8)
    rows = np.flatnonzero(coverage.max(axis=1))
    cols = np.flatnonzero(coverage.max(axis=0))
    glyph = Image.fromarray(coverage[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1])
    outputs = []
    for scale, (left, top) in ((1.0, (10, 5)), (0.5, (150, 140)), (0.35, (5, 170))):
        small = glyph.resize((round(glyph.width * scale), round(glyph.height * scale)), Image.LANCZOS)
        page = Image.new("L", (280, 280), 0)
        page.paste(small, (left, top))
        outputs.append(preprocess(page))
    # shrinking also thickens the pen relative to the digit: similar, not identical
    assert difference(outputs[0], outputs[1]) < 7
    assert difference(outputs[0], outputs[2]) < 7


# ---------------------------------------------------------------- polarity and alpha

@pytest.mark.parametrize("digit", [0, 4, 7])
def test_black_on_white_white_on_black_and_transparent_agree(digit):
    on_white = preprocess(canvas(digit, ink="black", seed=digit))
    on_black = preprocess(canvas(digit, ink="white", seed=digit))
    transparent = preprocess(canvas(digit, ink="transparent", seed=digit))
    assert np.abs(on_white.astype(int) - on_black.astype(int)).max() <= 2
    assert np.abs(on_white.astype(int) - transparent.astype(int)).max() <= 2


def test_transparent_background_whatever_rgb_hides_under_it():
    # some encoders keep white (or random) RGB under alpha = 0
    rgba = np.asarray(canvas(2, ink="transparent")).copy()
    reference = preprocess(Image.fromarray(rgba, "RGBA"))
    noise = np.random.default_rng(0).integers(0, 256, rgba.shape[:2] + (3,), dtype=np.uint8)
    hidden = rgba[..., 3] == 0
    rgba[hidden, :3] = noise[hidden]
    assert np.abs(preprocess(Image.fromarray(rgba, "RGBA")).astype(int) - reference.astype(int)).max() <= 2


def test_white_ink_on_transparent_background():
    rgba = np.asarray(canvas(5, ink="transparent")).copy()
    rgba[..., :3] = 255
    expected = preprocess(canvas(5))
    assert np.abs(preprocess(Image.fromarray(rgba, "RGBA")).astype(int) - expected.astype(int)).max() <= 2


def test_grey_background_and_coloured_ink():
    coverage = np.asarray(canvas(8, ink="white").convert("L"), dtype=np.float32)[..., None] / 255
    paper = np.array([200, 190, 170], dtype=np.float32)
    blue = np.array([20, 40, 160], dtype=np.float32)
    photo = np.rint(paper * (1 - coverage) + blue * coverage).astype(np.uint8)
    assert difference(preprocess(Image.fromarray(photo, "RGB")), preprocess(canvas(8))) < 5


# ---------------------------------------------------------------- blank images

@pytest.mark.parametrize("image", [
    Image.new("RGB", (280, 280), "white"),
    Image.new("L", (280, 280), 0),
    Image.new("RGBA", (280, 280), (0, 0, 0, 0)),
    Image.new("RGBA", (280, 280), (255, 255, 255, 0)),
    Image.new("RGBA", (280, 280), (255, 255, 255, 255)),
    Image.new("L", (1, 1), 0),
    Image.new("L", (3, 200), 128),
], ids=["white", "black", "transparent", "transparent-white-rgb", "opaque-white-rgba", "1x1", "sliver"])
def test_uniform_images_are_blank(image):
    with pytest.raises(BlankImageError):
        preprocess(image)


@pytest.mark.parametrize("level, sigma", [(128, 4), (128, 12), (240, 8), (60, 24), (128, 40)])
def test_near_uniform_noise_is_blank(level, sigma):
    rng = np.random.default_rng(sigma)
    noise = np.clip(rng.normal(level, sigma, (280, 280)), 0, 255).astype(np.uint8)
    with pytest.raises(BlankImageError):
        preprocess(Image.fromarray(noise))


def test_jpeg_of_a_blank_page_is_blank():
    rng = np.random.default_rng(1)
    paper = np.clip(rng.normal(235, 3, (300, 400, 3)), 0, 255).astype(np.uint8)
    with pytest.raises(BlankImageError):
        preprocess(encoded(Image.fromarray(paper), "JPEG", quality=40))


def test_blank_error_is_a_value_error_with_a_message():
    with pytest.raises(ValueError, match="ink"):
        preprocess(Image.new("L", (50, 50), 255))


# ---------------------------------------------------------------- noise and compression

def test_jpeg_artefacts_are_not_ink():
    reference = preprocess(canvas(6))
    jpeg = preprocess(encoded(canvas(6).convert("RGB"), "JPEG", quality=25))
    assert np.abs(np.subtract(ink_box(jpeg), ink_box(reference))).max() <= 1  # no speck widened the box
    assert difference(jpeg, reference) < 5


@pytest.mark.parametrize("sigma", [8, 24])
def test_sensor_noise_is_not_ink(sigma):
    rng = np.random.default_rng(sigma)
    gray = np.asarray(canvas(9).convert("L"), dtype=np.float32)
    noisy = np.clip(gray + rng.normal(0, sigma, gray.shape), 0, 255).astype(np.uint8)
    assert difference(preprocess(Image.fromarray(noisy)), preprocess(canvas(9))) < 5


def test_stray_specks_do_not_stretch_the_box():
    gray = np.asarray(canvas(7).convert("L")).copy()
    gray[3, 3] = gray[270, 20] = gray[140, 276] = 0  # lone dead pixels / dust
    assert difference(preprocess(Image.fromarray(gray)), preprocess(canvas(7))) < 5


def test_faint_but_real_ink_is_found():
    gray = np.asarray(canvas(4).convert("L"), dtype=np.float32)
    faint = np.rint(255 - (255 - gray) * 0.25).astype(np.uint8)  # ink only 64 levels darker
    assert difference(preprocess(Image.fromarray(faint)), preprocess(canvas(4))) < 5


# ---------------------------------------------------------------- stroke width

def _line_digit(width, size=280):
    """A '7' drawn with a pen `width` px wide on a size x size canvas."""
    paths = [[(0.2 * size, 0.15 * size), (0.8 * size, 0.15 * size), (0.45 * size, 0.88 * size)]]
    rgba = strokes.render_segments(strokes.paths_to_segments(paths), width, "black")
    return Image.fromarray(rgba, "RGBA")


@pytest.fixture(scope="module")
def mnist_widths():
    """Stroke widths of real MNIST digits, measured like ours (28x28, same function)."""
    return np.array([stroke_width(d.astype(np.float32) / 255) for d in mnist()["test_images"][:2000]])


@pytest.mark.parametrize("pen", [1, 2, 40])
@pytest.mark.mnist
def test_hairline_and_fat_pen_both_give_mnist_stroke_width(pen, mnist_widths):
    out = preprocess(_line_digit(pen))
    low, high = np.percentile(mnist_widths, [5, 95])
    assert low <= stroke_width(out.astype(np.float32) / 255) <= high


def test_pen_width_barely_changes_the_result():
    widths = [stroke_width(preprocess(_line_digit(pen)).astype(np.float32) / 255) for pen in (1, 6, 19, 40)]
    assert max(widths) / min(widths) < 1.35


@pytest.mark.mnist
def test_mnist_like_stroke_is_left_alone():
    # a digit already at MNIST proportions comes out as it went in
    digit = mnist()["test_images"][0]
    out = preprocess(Image.fromarray(digit).resize((280, 280), Image.BILINEAR))
    assert difference(out, digit) < 5


# ---------------------------------------------------------------- image modes and orientation

@pytest.fixture(scope="module")
def reference_seven():
    return preprocess(canvas(7))


@functools.cache
def _modes_of_the_seven():
    rgba = canvas(7)
    rgb = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
    gray16 = Image.fromarray(np.asarray(rgb.convert("L"), dtype=np.uint16) * 257)
    transparent = canvas(7, ink="transparent")
    palette_alpha = transparent.quantize(colors=32, method=Image.Quantize.FASTOCTREE)
    la = Image.merge("LA", (Image.new("L", rgba.size, 0), transparent.getchannel("A")))
    return {
        "L": rgb.convert("L"),
        "1": rgb.convert("L").point(lambda v: 255 if v > 127 else 0).convert("1", dither=Image.Dither.NONE),
        "I;16": gray16,
        "I": rgb.convert("L").convert("I"),
        "F": rgb.convert("L").convert("F"),
        "CMYK": rgb.convert("CMYK"),
        "YCbCr": rgb.convert("YCbCr"),
        "P": rgb.convert("P", palette=Image.ADAPTIVE, colors=16),
        "P-rgba-palette": palette_alpha,
        "LA": la,
        "RGBA": transparent,
        "GIF": encoded(rgb.convert("L"), "GIF"),
        "WEBP": encoded(rgb, "WEBP", quality=90),
        "BMP": encoded(rgb, "BMP"),
    }


MODES = ("L", "1", "I;16", "I", "F", "CMYK", "YCbCr", "P", "P-rgba-palette", "LA", "RGBA", "GIF", "WEBP", "BMP")


@pytest.mark.parametrize("mode", MODES)
def test_every_image_mode_gives_the_same_digit(mode, reference_seven):
    image = _modes_of_the_seven()[mode]
    if mode == "I;16":
        assert image.mode.startswith("I;16")
    out = preprocess(image)
    tolerance = 8 if mode == "1" else 5  # bilevel loses the anti-aliasing
    assert difference(out, reference_seven) < tolerance


def test_palette_image_with_transparent_index():
    rgba = np.asarray(canvas(1, ink="transparent"))
    index = np.where(rgba[..., 3] > 127, 1, 0).astype(np.uint8)
    image = Image.fromarray(index, "P")
    image.putpalette([255, 255, 255, 0, 0, 0] + [0] * 762)
    image.info["transparency"] = 0
    again = encoded(image, "PNG", transparency=0)
    assert again.mode == "P" and "transparency" in again.info
    assert difference(preprocess(again), preprocess(canvas(1))) < 8


def test_16_bit_with_only_12_bits_used():
    gray = np.asarray(canvas(2).convert("L"), dtype=np.uint16) * 16  # 0..4080 of 65535
    assert difference(preprocess(Image.fromarray(gray)), preprocess(canvas(2))) < 5


@pytest.mark.parametrize("top,full_scale", [(4095, 4095), (4000, 4095), (1023, 1023), (1024, 2047),
                                             (255, 255), (256, 511), (65535, 65535), (7, 255)])
def test_wide_images_are_scaled_by_the_bit_depth_they_use(top, full_scale):
    """A 10- or 12-bit sensor's image in a 16-bit file is read at its own full scale, never
    below 8 bits (a dim 8-bit-range image stays dim)."""
    pixels = np.array([[0, top // 2], [top, 0]], dtype=np.uint16)
    gray = preprocess_module._wide_gray(Image.fromarray(pixels), (MAX_WORK_SIDE, MAX_WORK_SIDE))
    assert gray.dtype == np.float32
    np.testing.assert_allclose(gray, pixels / np.float32(full_scale), rtol=1e-6)


def test_a_wide_image_without_light_is_black_and_negative_floats_are_clipped():
    shape = (MAX_WORK_SIDE, MAX_WORK_SIDE)
    dark = preprocess_module._wide_gray(Image.fromarray(np.zeros((3, 4), dtype=np.uint16)), shape)
    np.testing.assert_array_equal(dark, np.zeros((3, 4), dtype=np.float32))
    floats = np.array([[-5.0, 0.0], [127.5, 255.0]], dtype=np.float32)
    np.testing.assert_allclose(preprocess_module._wide_gray(Image.fromarray(floats, "F"), shape),
                               [[0.0, 0.0], [0.5, 1.0]], rtol=1e-6)


def test_a_large_wide_image_is_box_reduced_to_the_working_size():
    pixels = np.zeros((40, 60), dtype=np.uint16)
    pixels[:, :30] = 4095
    gray = preprocess_module._wide_gray(Image.fromarray(pixels), (20, 20))
    assert gray.shape == (14, 20)  # reduced by 3, the whole factor that fits 60 into 20
    np.testing.assert_allclose(gray[:, :10], 1.0, rtol=1e-6)
    np.testing.assert_array_equal(gray[:, 10:], 0.0)


def test_exif_orientation_is_applied():
    upright = canvas(7).convert("RGB")
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # the sensor's view
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    tagged = encoded(stored, "JPEG", quality=95, exif=exif.tobytes())
    untagged = encoded(stored, "JPEG", quality=95)
    expected = preprocess(upright)
    assert difference(preprocess(tagged), expected) < 5
    assert difference(preprocess(untagged), expected) > 15  # the tag is what made the difference


# ---------------------------------------------------------------- bounded work

def test_huge_image_is_reduced_before_the_heavy_work():
    big = canvas(3).convert("L").resize((4096, 4096), Image.NEAREST)
    ink = ink_map(big)
    assert max(ink.shape) <= MAX_WORK_SIDE
    assert difference(preprocess(big), preprocess(canvas(3))) < 5


def test_huge_image_with_a_hairline_digit():
    # a 2 px pen on 4096x4096: reduction makes it faint, not gone
    paths = [[(800, 600), (3300, 600), (1800, 3600)]]
    layer = Image.new("L", (4096, 4096), 255)
    ImageDraw.Draw(layer).line([p for path in paths for p in path], fill=0, width=2)
    out = preprocess(layer)
    assert max(ink_box(out)) == 20
    assert np.count_nonzero(out > 128) > 25


def test_tiny_image_works():
    digit = np.zeros((12, 12), dtype=np.uint8)
    digit[2:10, 5:7] = 255  # a '1'
    out = preprocess(Image.fromarray(digit))
    assert ink_box(out)[0] == 20


# ---------------------------------------------------------------- the redraw tools themselves

def test_zhang_suen_thins_a_bar_to_its_centre_line():
    bar = np.zeros((30, 60), dtype=bool)
    bar[10:19, 5:55] = True
    skeleton = strokes.zhang_suen(bar)
    rows, cols = np.nonzero(skeleton)
    assert np.all(skeleton.sum(axis=0) <= 1)  # one pixel thick
    assert set(rows) <= {13, 14, 15}  # in the middle of rows 10..18
    assert cols.max() - cols.min() >= 35  # and nearly as long as the bar


def test_zhang_suen_keeps_a_ring_closed():
    yy, xx = np.mgrid[:60, :60]
    r = np.hypot(yy - 30, xx - 30)
    skeleton = strokes.zhang_suen((r > 15) & (r < 24))
    radii = r[skeleton]
    assert 17 < radii.mean() < 22
    angles = np.degrees(np.arctan2(*np.nonzero(skeleton) - np.array([[30], [30]])))
    assert np.histogram(angles, bins=36, range=(-180, 180))[0].min() > 0  # no gap


@pytest.mark.mnist
def test_canvas_png_is_what_a_browser_canvas_sends():
    rgba = strokes.redraw_skeleton(mnist()["test_images"][0], "transparent", np.random.default_rng(0))
    image = decode(strokes.png_bytes(rgba))
    assert image.format == "PNG" and image.mode == "RGBA" and image.size == (280, 280)
    pixels = np.asarray(image)
    assert pixels[..., :3].max() == 0 and pixels[..., 3].max() == 255


@pytest.mark.parametrize("variant", strokes.VARIANTS)
def test_font_paths_stay_on_the_canvas(variant):
    rng = np.random.default_rng(3)
    for digit in range(10):
        paths, brush = strokes.font_paths(digit, rng, variant)
        points = np.array([p for path in paths for p in path])
        assert points.min() >= brush / 2 - 1 and points.max() <= strokes.CANVAS - brush / 2 + 1


# ---------------------------------------------------------------- fidelity with the shipped model

def _shipped_model():
    from model.inference import load_model
    return require_trained(load_model())


@pytest.mark.mnist
@pytest.mark.slow
def test_redrawn_mnist_digits_get_the_same_answer():
    """MNIST digits handed in as people would (enlarged anywhere on a 280x280
    canvas, some transparent, inverted, thin or thick) must be read as the model
    reads the original 28x28: preprocessing gives back what MNIST's own did."""
    model = _shipped_model()
    data = mnist()
    rng = np.random.default_rng(7)
    pick = rng.choice(len(data["test_images"]), size=2000, replace=False)
    originals = data["test_images"][pick]
    variants = rng.choice(strokes.VARIANTS, size=len(pick))
    handed_in = np.stack([preprocess(decode(strokes.png_bytes(strokes.redraw_raster(d, v, rng))))
                          for d, v in zip(originals, variants)])
    before = model.predict_proba(originals).argmax(axis=1)
    after = model.predict_proba(handed_in).argmax(axis=1)
    agreement = float(np.mean(before == after))
    per_variant = {v: float(np.mean((before == after)[variants == v])) for v in strokes.VARIANTS}
    assert agreement >= 0.99, per_variant


@pytest.mark.mnist
@pytest.mark.slow
def test_pen_strokes_on_a_canvas_are_read_correctly():
    """MNIST digits re-traced with a uniform round pen (6, 19, 30 px), small,
    off-centre, transparent, inverted: the judged variants, smaller sample."""
    model = _shipped_model()
    data = mnist()
    rng = np.random.default_rng(11)
    pick = rng.choice(len(data["test_images"]), size=120, replace=False)
    images, labels = data["test_images"][pick], data["test_labels"][pick]
    for variant in strokes.VARIANTS:
        digits = np.stack([preprocess(decode(strokes.png_bytes(strokes.redraw_skeleton(d, variant, rng))))
                           for d in images])
        accuracy = float(np.mean(model.predict_proba(digits).argmax(axis=1) == labels))
        assert accuracy >= 0.93, (variant, accuracy)


# ---------------------------------------------------------------- small exact cases (mutation testing)
#
# Hand-built inputs whose right answer follows from the rules in app/preprocess.py's docstrings:
# each pins one rule at its boundary, where the digit tests above are too coarse to see it.

def _levels(pixels):
    return np.asarray(pixels, dtype=np.float32) / np.float32(255.0)


def _pad_canvas(ink, shape, top, left):
    full = np.zeros(shape, np.float32)
    full[top:top + ink.shape[0], left:left + ink.shape[1]] = ink
    return full


def _wide_image(pixels, mode):
    """A 16/32-bit or float PIL image of `pixels` in `mode`."""
    if mode == "I;16B":
        return Image.frombytes(mode, pixels.shape[::-1], pixels.astype(">u2").tobytes())
    if mode in ("I;16", "I;16L", "I;16N"):
        return Image.frombytes(mode, pixels.shape[::-1], pixels.astype("=u2" if mode == "I;16N" else "<u2").tobytes())
    if mode == "I":
        return Image.fromarray(pixels.astype(np.int32), "I")
    return Image.fromarray(pixels.astype(np.float32), "F")


@pytest.mark.parametrize("mode", ["I;16", "I;16L", "I;16B", "I;16N", "I", "F"])
def test_every_wide_mode_is_read_at_its_own_bit_depth(mode):
    """Grey levels above 255 (a 12-bit scan: paper 3000, ink 1000) are all white to an 8-bit
    conversion; every 16/32-bit and float mode must take the wide path and give the same digit
    as the 8-bit drawing."""
    shape = np.zeros((40, 40), dtype=bool)
    shape[8:32, 18:22] = shape[8:12, 10:30] = True  # a 'T'
    eight_bit = preprocess(Image.fromarray(np.where(shape, 0, 255).astype(np.uint8)))
    wide = _wide_image(np.where(shape, 1000, 3000), mode)
    assert wide.mode == mode
    np.testing.assert_array_equal(preprocess(wide), eight_bit)


@pytest.mark.parametrize("mode", ["LAB", "HSV", "YCbCr", "CMYK"])
def test_colour_spaces_are_read_through_rgb(mode):
    """Modes Pillow cannot turn into grey directly (LAB) must go through RGB; the others give the
    same digit either way."""
    gray = np.full((40, 40), 255, np.uint8)
    gray[8:32, 18:22] = 0
    gray[8:12, 10:30] = 60
    image = Image.fromarray(gray).convert("RGB").convert(mode)
    np.testing.assert_array_equal(preprocess(image), preprocess(Image.fromarray(gray)))


def _palette_image(palette_mode):
    image = Image.new("P", (4, 4))
    image.putpalette(bytes(range(256)) * (len(palette_mode)), palette_mode)
    return image


def _keyed_gray():
    image = Image.new("L", (4, 4), 255)
    image.info["transparency"] = 255
    return image


@pytest.mark.parametrize("make, expected", [
    (lambda: Image.new("RGBA", (4, 4)), True),
    (lambda: Image.new("LA", (4, 4)), True),
    (lambda: Image.new("PA", (4, 4)), True),
    (lambda: Image.new("RGBa", (4, 4)), True),
    (lambda: Image.new("La", (4, 4)), True),
    (_keyed_gray, True),
    (lambda: _palette_image("RGBA"), True),
    (lambda: _palette_image("RGB"), False),
    (lambda: Image.new("L", (4, 4)), False),
    (lambda: Image.new("RGB", (4, 4)), False),
], ids=["RGBA", "LA", "PA", "RGBa", "La", "L-colour-key", "P-rgba-palette", "P-rgb-palette", "L", "RGB"])
def test_has_alpha_knows_every_transparency_layout(make, expected):
    """Alpha modes (straight and premultiplied), palette alpha and colour keys all mean
    transparency is in play; a plain palette or grey image has none."""
    assert preprocess_module._has_alpha(make()) is expected


def test_ink_map_of_a_small_drawing_is_its_distance_from_the_paper():
    """An 'L' whose foot sticks out only on its last row: the ink window must reach the foot's
    end, and every pixel's ink is exactly |level - paper| (float32, zeros outside the window)."""
    pixels = np.full((12, 10), 200, np.uint8)
    pixels[2:9, 3] = 50
    pixels[8, 3:8] = 50  # the foot, further right than any other row
    pixels[4, 3] = 120
    ink = ink_map(Image.fromarray(pixels))
    assert ink.dtype == np.float32 and ink.shape == (12, 10)
    expected = np.abs(_levels(pixels) - _levels(200))
    np.testing.assert_allclose(ink, expected, rtol=1e-6, atol=1e-7)
    assert ink[8, 7] > 0.5 and ink[8, 8] == 0


def test_ink_map_of_a_tall_page_with_an_uneven_border_keeps_its_lower_half():
    """A smudge on the border makes the ring non-uniform (the whole-image path): a page taller
    than wide must keep all its rows, ink near the bottom included."""
    pixels = np.full((30, 10), 200, np.uint8)
    pixels[0, 4] = 190  # smudge on the ring
    pixels[20:26, 4:6] = 0  # ink below row 10
    ink = ink_map(Image.fromarray(pixels))
    np.testing.assert_allclose(ink, np.abs(_levels(pixels) - _levels(200)), rtol=1e-6, atol=1e-7)


def test_opaque_card_with_transparent_corners():
    """A dark opaque card with cut-out (transparent) corners and white ink: the corners send it
    down the alpha path, where grey is premultiplied by alpha, so the opaque black card itself
    is background (no ink) and only the white stroke (and the cut corners) differ from it."""
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[10:30, 18:22, :3] = 255
    for y, x in ((0, 0), (0, 39), (39, 0), (39, 39)):
        rgba[y, x] = 0
    expected = np.zeros((40, 40), np.float32)
    expected[10:30, 18:22] = 1.0
    expected[[0, 0, 39, 39], [0, 39, 0, 39]] = 1.0
    np.testing.assert_allclose(ink_map(Image.fromarray(rgba, "RGBA")), expected, atol=1e-6)


def test_uniform_ring_box_is_the_ink_box_plus_one_within_the_ring():
    """On a 20x20 canvas the ring is 1 px: ink touching its inner edge still leaves the ring uniform
    (box = ink box plus one pixel, cut at the image), ink on the ring or a hidden colour on the
    ring is not (the general search takes over)."""
    def box_with(*pixels, colour=(0, 0, 0, 255)):
        canvas = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
        for x, y in pixels:
            canvas.putpixel((x, y), colour)
        found = preprocess_module._uniform_ring_box(canvas)
        return None if found is None else found[0]

    assert box_with((1, 1)) == (0, 3, 0, 3)  # (top, bottom, left, right)
    assert box_with((18, 18)) == (17, 20, 17, 20)
    assert box_with((5, 1), (18, 12)) == (0, 14, 4, 20)
    for on_ring in ((19, 10), (10, 19), (0, 10), (10, 0)):
        assert box_with((10, 10), on_ring) is None
    canvas = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    canvas.putpixel((10, 10), (0, 0, 0, 255))
    canvas.putpixel((0, 10), (255, 0, 0, 0))  # invisible, but not transparent black
    assert preprocess_module._uniform_ring_box(canvas) is None


@pytest.mark.parametrize("shape, band", [((280, 280), 6), ((20, 20), 1), ((97, 301), 2), ((301, 97), 2),
                                         ((1, 1), 1), ((100, 1000), 2)])
def test_border_band_is_two_percent_of_the_shorter_side(shape, band):
    """The ring is round(2%) of the shorter side, at least one pixel."""
    assert preprocess_module._border_band(shape) == band


def test_ring_of_a_one_pixel_strip_is_the_strip_once():
    """A one-row (or one-column) image is all ring: each pixel counted once."""
    row = np.arange(9).reshape(1, 9)
    np.testing.assert_array_equal(np.sort(preprocess_module._ring_values(row)), np.arange(9))
    np.testing.assert_array_equal(np.sort(preprocess_module._ring_values(row.T)), np.arange(9))


def test_block_average_below_six_pixels_is_the_ink_itself():
    """An image under 6 px on a side has no 3x3 reduction worth the name: the ink and its
    pixel count come back as they are."""
    ink = np.arange(25, dtype=np.float32).reshape(5, 5) / 25
    values, count = preprocess_module._block_average(preprocess_module.InkWindow(ink, (5, 5)))
    np.testing.assert_array_equal(values, ink)
    assert count == 25
    tall = np.ones((5, 40), np.float32)
    assert preprocess_module._block_average(preprocess_module.InkWindow(tall, (5, 40)))[1] == 200


def test_block_average_of_six_pixels_is_the_means_of_3x3_blocks():
    """6x6 reduces to 2x2: each value is the mean of its 3x3 block."""
    ink = np.zeros((6, 6), np.float32)
    ink[:3, :3] = 1.0
    ink[1, 4] = 0.9
    ink[3:, 3:] = 0.45
    values, count = preprocess_module._block_average(preprocess_module.InkWindow(ink, (6, 6)))
    np.testing.assert_allclose(values, [[1.0, 0.1], [0.0, 0.45]], rtol=1e-6, atol=1e-7)
    assert count == 4


def test_block_average_of_a_window_is_that_of_the_whole_image():
    """On a window near the far corner of a 280x250 image (neither side a multiple of 3: cells
    are 3.01 px, so by row 240 they have drifted most of a pixel from a 3 px grid), the cells it
    touches hold exactly the values of Pillow's BOX reduction of the whole image to (83, 93),
    and the count is that of the whole reduction."""
    rng = np.random.default_rng(0)
    shape, top, left = (280, 250), 240, 200
    blob = rng.random((31, 23)).astype(np.float32)
    values, count = preprocess_module._block_average(preprocess_module.InkWindow(blob, shape, top, left))
    assert count == 93 * 83
    full = _pad_canvas(blob, shape, top, left)
    whole = np.asarray(Image.fromarray(full, "F").resize((83, 93), Image.BOX), dtype=np.float32)
    r0 = preprocess_module._cells(top, top + 31, 280)[0]
    c0 = preprocess_module._cells(left, left + 23, 250)[0]
    placed = _pad_canvas(values, whole.shape, r0, c0)
    np.testing.assert_allclose(placed, whole, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("start, stop, length, expected", [
    (0, 3, 9, (0, 1, 0, 3)), (4, 5, 9, (1, 2, 3, 6)), (7, 9, 9, (2, 3, 6, 9)), (0, 9, 9, (0, 3, 0, 9)),
    (4, 6, 10, (1, 2, 3, 7)), (9, 10, 10, (2, 3, 6, 10)),
])
def test_cells_touching_a_span(start, stop, length, expected):
    """Cells of a reduction of `length` to length // 3 that touch [start, stop), and the pixels
    they cover: for length 10, cell 1 covers [3.33, 6.67), i.e. pixels 3 to 6."""
    assert preprocess_module._cells(start, stop, length) == expected


def test_center_of_mass_placement_is_clamped_to_the_field():
    """A digit whose mass sits on one edge is shifted as far as the field allows, never out
    of it: mass on the bottom row puts that row at 19 (top 0), mass on the top row puts the
    digit's top at 8 (28 - 20); the same across."""
    place = preprocess_module._center_of_mass_place
    bottom = np.zeros((20, 4), np.float32)
    bottom[-1] = 1.0
    assert np.argwhere(place(bottom) == 255).tolist() == [[19, c] for c in range(12, 16)]  # cx 1.5: round(12.5) = 12
    top = np.zeros((20, 4), np.float32)
    top[0] = 1.0
    assert np.argwhere(place(top) == 255).tolist() == [[8, c] for c in range(12, 16)]
    np.testing.assert_array_equal(place(bottom.T), place(bottom).T)
    np.testing.assert_array_equal(place(top.T), place(top).T)


def test_center_of_mass_placement_of_a_faint_dot_and_of_nothing():
    """Any positive ink is placed (a half-inked dot lands on pixel (14, 14) at level 128);
    none at all is a blank image, with the user-facing message."""
    out = preprocess_module._center_of_mass_place(np.full((1, 1), 0.5, np.float32))
    assert out.dtype == np.uint8 and out[14, 14] == 128 and np.count_nonzero(out) == 1
    with pytest.raises(BlankImageError, match="holds no ink"):
        preprocess_module._center_of_mass_place(np.zeros((20, 20), np.float32))


def _patch(values, shape=(40, 40), top=12, left=12):
    """`values` (row-major) in a 6x6 patch of a zero image."""
    ink = np.zeros(shape, np.float32)
    ink[top:top + 6, left:left + 6] = np.asarray(values, np.float32).reshape(6, 6)
    return ink


def test_clean_ink_rescales_to_the_16th_brightest_pixel():
    """On 1600 pixels the contrast is the 16th brightest: ink is then mapped linearly from
    25% (nothing) to 75% (solid) of it. With 16 pixels at 1.0, a 0.5 pixel is half ink and a
    0.3 pixel a tenth; the result is float32."""
    ink = _patch([1.0] * 16 + [0.5] * 19 + [0.3])
    cleaned = clean_ink(ink)
    assert cleaned.dtype == np.float32
    expected = np.zeros_like(ink)
    expected[ink == 1.0] = 1.0
    expected[ink == np.float32(0.5)] = 0.5
    expected[ink == np.float32(0.3)] = (np.float32(0.3) - np.float32(0.25)) / np.float32(0.5)
    np.testing.assert_array_equal(cleaned, expected)
    # float64 input is read as float32 first: the very same bits
    np.testing.assert_array_equal(clean_ink(ink.astype(np.float64)), cleaned)


def test_clean_ink_ignores_up_to_15_hot_pixels():
    """15 pixels far brighter than the rest cannot set the contrast: the 0.5 stroke is solid."""
    ink = _patch([1.0] * 15 + [0.5] * 21)
    np.testing.assert_array_equal(clean_ink(ink), (ink > 0).astype(np.float32))


def test_clean_ink_allows_one_hot_pixel_in_50():
    """On a 10x60 image (600 pixels) the contrast is the 12th brightest, not the 16th."""
    ink = np.zeros((10, 60), np.float32)
    ink[3:7, 20:26] = 0.5
    ink[3:5, 20:26] = 1.0  # 12 pixels
    expected = np.where(ink == 1.0, 1.0, np.where(ink > 0, 0.5, 0.0)).astype(np.float32)
    np.testing.assert_array_equal(clean_ink(ink), expected)


def test_clean_ink_of_a_window_is_that_of_the_whole_image():
    """The ink window is a shortcut: a dot on a 280x280 canvas cleans the same, cut to its
    window or not (the hot-pixel allowance follows the image's size, not the window's)."""
    dot = np.full((7, 7), 0.0, np.float32)
    dot[1:6, 1:6] = 0.5
    dot[3, 3] = 1.0
    whole = preprocess_module._clean_ink(preprocess_module.InkWindow(_pad_canvas(dot, (280, 280), 100, 120),
                                                                     (280, 280)))
    window = preprocess_module._clean_ink(preprocess_module.InkWindow(dot, (280, 280), 100, 120))
    np.testing.assert_array_equal(whole[100:107, 120:127], window)
    np.testing.assert_array_equal(window, (dot > 0).astype(np.float32))  # contrast 0.5: all solid


def test_a_big_filled_shape_is_ink_not_noise():
    """Noise is measured on the image's border ring, not on the ink window's: a 200 px filled
    square on a clean page (its window's ring mostly ink) is a drawing, scaled to 20x20."""
    page = Image.new("L", (280, 280), 255)
    page.paste(0, (40, 40, 240, 240))
    assert ink_box(preprocess(page)) == (20, 20)


def _cell_squares(count):
    """`count` solid 3x3 squares, each exactly on a cell of the 3x3 reduction of a 60x60 image."""
    ink = np.zeros((60, 60), np.float32)
    for i in range(count):
        ink[9 + 9 * i:12 + 9 * i, 30:33] = 1.0
    return ink


def test_block_check_needs_four_inked_cells():
    """The block-average check takes the 4th largest of 400 cells (one in 50 may be hot):
    three solid dots are too little to be a drawing, four are enough."""
    with pytest.raises(BlankImageError, match="holds no ink"):
        clean_ink(_cell_squares(3))
    np.testing.assert_array_equal(clean_ink(_cell_squares(4)), _cell_squares(4))


def test_scattered_specks_are_blank_however_strong():
    """Isolated pixels at 0.36, one per 3x3 cell, pass the contrast floor but average 0.04 in
    every cell, under half the floor (a 1 px line at that level would keep 0.12)."""
    specks = np.zeros((60, 60), np.float32)
    specks[7:52:3, 7:52:3] = 0.36
    with pytest.raises(BlankImageError):
        clean_ink(specks)
    line = np.zeros((60, 60), np.float32)
    line[7:52, 31] = 0.36
    assert np.count_nonzero(clean_ink(line) == 1.0) == 45


def test_four_inked_pixels_make_a_drawing_three_do_not():
    """On a tiny 9x9 image (contrast = the brightest pixel) a 2x2 dot is the smallest drawing;
    three full pixels and one exactly half inked are not: only pixels over half count."""
    ink = np.zeros((9, 9), np.float32)
    ink[3:5, 3:5] = 1.0
    np.testing.assert_array_equal(clean_ink(ink), ink)
    ink[4, 4] = 0.5  # cleaned to exactly 0.5
    with pytest.raises(BlankImageError, match="holds no ink"):
        clean_ink(ink)


def test_clean_ink_refuses_non_finite_and_non_2d_ink():
    """NaN or infinite ink (a broken float image) and anything but a 2-D array are blank,
    not a crash or a NaN digit."""
    ink = _patch([1.0] * 36)
    ink[0, 0] = np.nan
    with pytest.raises(BlankImageError):
        clean_ink(ink)
    ink[0, 0] = np.inf
    with pytest.raises(BlankImageError):
        clean_ink(ink)
    with pytest.raises(BlankImageError):
        clean_ink(np.ones(50, np.float32))
    with pytest.raises(BlankImageError):
        clean_ink(np.ones((3, 40, 40), np.float32))


def test_a_two_pixel_high_image_is_cropped_to_its_ink():
    """Under 3 px high there is no speck filter, but the crop to the ink still happens: a
    10 px dash in a 40 px wide strip comes out 20 px wide, one solid bar."""
    strip = np.full((2, 40), 255, np.uint8)
    strip[:, 10:20] = 0
    out = preprocess(Image.fromarray(strip))
    height, width = ink_box(out)
    assert width == 20 and height <= 5
    assert np.count_nonzero(out.max(axis=0)) == 20  # no gap along the bar


def test_a_three_pixel_high_image_already_ignores_specks():
    """From 3 px on a side the speck filter applies: a lone dead pixel far from a short line
    does not stretch its box, through preprocess and through clean_ink_to_mnist alike."""
    line = np.full((3, 40), 255, np.uint8)
    line[1, 2:12] = 0
    speck = line.copy()
    speck[1, 35] = 0
    np.testing.assert_array_equal(preprocess(Image.fromarray(speck)), preprocess(Image.fromarray(line)))
    cleaned = [clean_ink(ink_map(Image.fromarray(x))) for x in (line, speck)]
    np.testing.assert_array_equal(preprocess_module.clean_ink_to_mnist(cleaned[1]),
                                  preprocess_module.clean_ink_to_mnist(cleaned[0]))


def test_crop_to_ink_keeps_lone_specks_when_there_is_nothing_else():
    """Only specks (each 1/9 after 3x3 averaging): better their box than nothing."""
    ink = np.zeros((20, 20), np.float32)
    ink[3, 4] = ink[15, 12] = 1.0
    crop = preprocess_module._crop_to_ink(ink, ignore_specks=True)
    assert crop.shape == (13, 9) and crop[0, 0] == 1.0 and crop[-1, -1] == 1.0


def test_crop_to_ink_without_speck_filter_is_the_bounding_box():
    ink = np.zeros((4, 5), np.float32)
    ink[1:3, 2:4] = [[0.2, 1.0], [0.5, 0.01]]
    np.testing.assert_array_equal(preprocess_module._crop_to_ink(ink), ink[1:3, 2:4])


def test_fit_box_keeps_a_one_pixel_line_one_pixel_wide():
    """A 40x1 line scaled to 20 px tall is half a pixel wide: one output column, not two."""
    assert preprocess_module._fit_box(np.ones((40, 1), np.float32)).shape == (20, 1)


def test_clean_ink_to_mnist_reads_float64_ink_like_float32():
    """A tool handing in float64 ink gets the same digit as with float32."""
    ink = np.zeros((30, 30), np.float32)
    ink[5:25, 12:16] = 1.0
    ink[5:8, 6:22] = 1.0
    expected = preprocess_module.clean_ink_to_mnist(ink)
    np.testing.assert_array_equal(preprocess_module.clean_ink_to_mnist(ink.astype(np.float64)), expected)


def test_kth_largest_scales_its_allowance_with_the_size():
    """k is capped at one value in 50 (at least 1); zeros are not candidates."""
    kth = preprocess_module._kth_largest
    assert kth(np.array([0.2, 0.9, 0.5], np.float32), k=16) == pytest.approx(0.9)  # under 100 values: the max
    hundred = np.full(100, 0.1, np.float32)
    hundred[:2] = [0.9, 0.8]
    assert kth(hundred, k=16) == pytest.approx(0.8)  # 100 values: the 2nd
    four = np.array([0.4, 0.3, 0.2, 0.1], np.float32)
    assert kth(four, size=1000, k=4) == pytest.approx(0.1)  # exactly k candidates: the smallest
    assert kth(four, size=1000, k=5) == 0.0  # fewer than k: no contrast


def test_noise_level_is_the_median_ring_distance_over_0_6745():
    """Median of |N(0, s)| is 0.6745 s; with half the ring or more exactly zero there is no noise."""
    ink = np.zeros((4, 4), np.float32)
    ring = np.ones((4, 4), bool)
    ring[1:3, 1:3] = False
    ink[ring] = 0.1
    assert preprocess_module._noise_level(ink) == pytest.approx(0.1 / 0.6745, rel=1e-6)
    ink[0, :] = ink[1:3, 0] = 0  # 6 of the 12 ring pixels zero: the median is 0.05
    assert preprocess_module._noise_level(ink) == pytest.approx(0.05 / 0.6745, rel=1e-6)
    ink[3, 0] = 0  # 7 of 12
    assert preprocess_module._noise_level(ink) == 0.0


def test_erosion_stops_before_eating_most_of_the_ink():
    """A 40x40 solid blob has relative width 10 (MNIST: 2.1-2.7), so it is eroded at working
    size 94 (scale 2.36) by 20 steps; the 20th would leave 54^2 / 94^2 = 33% < 35% of the ink,
    so it stops after 19: a 56x56 solid square."""
    out = preprocess_module._normalize_stroke(np.ones((40, 40), np.float32))
    assert out.shape == (56, 56)
    assert out.min() == 1.0


def test_a_long_hairline_is_dilated_to_mnist_width():
    """A 300x1 line has relative width 20 * 1 / 300 = 0.07 (MNIST: 2.1-2.7): dilating by r
    solves (1 + 2r) / (300 + 2r) = 2.1 / 20, r = 17.0 px, 5 steps at working size, so the line
    is resampled by 5 / 17.0 to 88x1 (never below one pixel across) and grown by 5 on every
    side: 98 x 11, whichever way it lies."""
    line = np.ones((300, 1), np.float32)
    out = preprocess_module._normalize_stroke(line)
    assert out.shape == (98, 11)
    np.testing.assert_array_equal(preprocess_module._normalize_stroke(line.T), out.T)


@pytest.mark.parametrize("size, max_size, factor", [
    ((1000, 300), (512, 512), 2), ((300, 1000), (512, 512), 2), ((512, 512), (512, 512), 1),
    ((513, 10), (512, 512), 2), ((10, 1537), (512, 512), 4), ((1000, 300), (1024, 512), 1),
    ((300, 1000), (1024, 512), 2), ((3000, 300), (1024, 512), 3),
])
def test_reduce_factor_is_the_smallest_whole_factor_that_fits(size, max_size, factor):
    """size and max_size are (width, height): each side must fit its own limit."""
    assert preprocess_module.reduce_factor(size, max_size) == factor


def test_exif_mirror_orientation_is_undone():
    """Orientation 2 (mirrored, as some front cameras store) is not upright: it must be flipped."""
    gray = np.full((40, 40), 255, np.uint8)
    gray[8:32, 10:14] = gray[8:12, 10:30] = 0  # a 'Γ', not mirror-symmetric
    upright = Image.fromarray(gray)
    exif = Image.Exif()
    exif[0x0112] = 2
    tagged = encoded(upright.transpose(Image.Transpose.FLIP_LEFT_RIGHT), "PNG", exif=exif.tobytes())
    assert tagged.getexif().get(0x0112) == 2
    np.testing.assert_array_equal(preprocess(tagged), preprocess(upright))


def test_wide_images_that_are_empty_or_all_negative_are_black():
    """No positive level: nothing to scale by, the image is black (and an empty one empty)."""
    shape = (MAX_WORK_SIDE, MAX_WORK_SIDE)
    negative = Image.fromarray(np.full((3, 4), -5.0, np.float32), "F")
    np.testing.assert_array_equal(preprocess_module._wide_gray(negative, shape), np.zeros((3, 4), np.float32))
    assert preprocess_module._wide_gray(Image.new("I;16", (0, 0)), shape).shape == (0, 0)


def test_stroke_width_on_exact_shapes():
    """2 * area / boundary, boundary the total variation: an h x w solid bar has boundary
    2h + 2w - 2 + sqrt(2) (one corner's step is diagonal); a faint dot measures like a full
    one, nothing measures 0, and an integer mask gives the same as floats."""
    bar = np.zeros((14, 8), np.uint8)
    bar[2:12, 2:6] = 1  # 10 x 4
    expected = 2 * 40 / (2 * 10 + 2 * 4 - 2 + np.sqrt(2))
    assert stroke_width(bar) == pytest.approx(expected, rel=1e-6)
    assert stroke_width(bar.astype(np.float32)) == pytest.approx(expected, rel=1e-6)
    dot = 2 / (2 + np.sqrt(2))
    assert stroke_width(np.ones((1, 1), np.float32)) == pytest.approx(dot, rel=1e-6)
    assert stroke_width(np.full((1, 1), 0.2, np.float32)) == pytest.approx(dot, rel=1e-6)
    assert stroke_width(np.zeros((5, 5), np.float32)) == 0.0


def test_blank_errors_carry_the_message_from_every_check():
    """Whichever check finds the image blank (contrast, too few pixels), the user sees the same
    message."""
    with pytest.raises(BlankImageError, match="holds no ink"):
        clean_ink(np.zeros((10, 10), np.float32))
    few = np.zeros((9, 9), np.float32)
    few[3:5, 3:5] = 1.0
    few[4, 4] = 0.0
    with pytest.raises(BlankImageError, match="holds no ink"):
        clean_ink(few)
