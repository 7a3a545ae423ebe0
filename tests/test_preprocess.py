"""Preprocessing: whatever people hand in must become the 28x28 MNIST digit the
model knows, whatever the polarity, alpha, mode, orientation, size or pen."""
import functools
import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from app import preprocess as preprocess_module
from app.preprocess import MAX_WORK_SIDE, BlankImageError, ink_map, preprocess, stroke_width
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
