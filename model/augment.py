"""On-the-fly data augmentation, vectorized over a batch.

MNIST was written with pens on paper by a few hundred people; our users draw
with a mouse or a finger. Random affine warps (rotation, scale, aspect, shear,
shift), smooth elastic distortions and stroke thickening/thinning show the
network the shapes and stroke widths it will meet. Every image in a batch gets
its own random parameters; all of it is a single bilinear resampling pass.
"""
from dataclasses import asdict, dataclass, fields

import numpy as np

SIZE = 28


@dataclass(frozen=True)
class AugmentConfig:
    rotate_deg: float = 10.0      # uniform in [-r, r]
    scale: float = 0.12           # log-uniform in [1 - s, 1 + s]
    aspect: float = 0.10          # x/y stretch, log-uniform in [1 - a, 1 + a]
    shear: float = 0.20           # horizontal shear factor in [-s, s]
    shift_px: float = 2.0         # uniform in [-t, t] on each axis
    elastic_prob: float = 0.3
    elastic_sigma: float = 4.0    # smoothness of the displacement field (pixels)
    elastic_px: float = 0.8       # standard deviation of the displacement (pixels)
    thickness_prob: float = 0.5   # share of images whose strokes get bolder or thinner

    @classmethod
    def none(cls):
        return cls(**{f.name: 0.0 for f in fields(cls)})

    @classmethod
    def without(cls, *names):
        """The default config with the named families switched off (for ablations)."""
        families = {"rotate": ["rotate_deg"], "scale": ["scale", "aspect"], "shear": ["shear"],
                    "shift": ["shift_px"], "elastic": ["elastic_prob"], "thickness": ["thickness_prob"]}
        off = {f: 0.0 for name in names for f in families[name]}
        return cls(**off)

    def as_dict(self):
        return asdict(self)


def _gaussian_matrix(size, sigma):
    """Row-normalized Gaussian smoothing as a matrix: G @ field @ G.T blurs a field."""
    idx = np.arange(size)
    g = np.exp(-((idx[:, None] - idx[None, :]) ** 2) / (2 * sigma ** 2))
    return (g / g.sum(axis=1, keepdims=True)).astype(np.float32)


def _affine_source_coords(n, cfg, rng):
    """Where each output pixel samples the input, (n, 28, 28, 2) as (row, col)."""
    angle = np.deg2rad(rng.uniform(-cfg.rotate_deg, cfg.rotate_deg, n))
    scale = np.exp(rng.uniform(np.log1p(-cfg.scale), np.log1p(cfg.scale), n))
    aspect = np.exp(rng.uniform(np.log1p(-cfg.aspect), np.log1p(cfg.aspect), n))
    shear = rng.uniform(-cfg.shear, cfg.shear, n)
    shift = rng.uniform(-cfg.shift_px, cfg.shift_px, (n, 2))
    sx, sy = scale * aspect, scale / aspect
    cos, sin = np.cos(angle), np.sin(angle)
    # Forward map (x, y) -> R @ Shear @ S @ (x, y); we need its inverse for sampling.
    forward = np.empty((n, 2, 2))
    forward[:, 0, 0] = cos * sx - sin * 0
    forward[:, 0, 1] = cos * shear * sy - sin * sy
    forward[:, 1, 0] = sin * sx
    forward[:, 1, 1] = sin * shear * sy + cos * sy
    inverse = np.linalg.inv(forward).astype(np.float32)[:, :, :, None, None]
    center = np.float32((SIZE - 1) / 2.0)
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) - center
    ox = xs[None] - shift[:, 0, None, None].astype(np.float32)
    oy = ys[None] - shift[:, 1, None, None].astype(np.float32)
    src_x = inverse[:, 0, 0] * ox + inverse[:, 0, 1] * oy + center
    src_y = inverse[:, 1, 0] * ox + inverse[:, 1, 1] * oy + center
    return np.stack([src_y, src_x], axis=-1)                            # (n, 28, 28, row/col)


def _elastic_displacement(n, cfg, rng, gauss):
    apply = np.flatnonzero(rng.random(n) < cfg.elastic_prob)
    field = np.zeros((n, SIZE, SIZE, 2), np.float32)
    noise = rng.uniform(-1, 1, (apply.size, 2, SIZE, SIZE)).astype(np.float32)
    noise = gauss @ noise @ gauss.T
    noise /= noise.std(axis=(1, 2, 3), keepdims=True) + np.float32(1e-6)
    field[apply] = noise.transpose(0, 2, 3, 1) * np.float32(cfg.elastic_px)
    return field


def _bilinear(images, coords):
    """Sample (n, 28, 28) images at fractional (row, col) coords; outside is 0."""
    n = images.shape[0]
    padded = np.zeros((n, SIZE + 2, SIZE + 2), np.float32)
    padded[:, 1:-1, 1:-1] = images
    limit = np.float32(SIZE + 0.999)
    r = np.clip(coords[..., 0] + np.float32(1), 0, limit)
    c = np.clip(coords[..., 1] + np.float32(1), 0, limit)
    r0, c0 = r.astype(np.intp), c.astype(np.intp)  # floor: both are >= 0
    fr, fc = r - r0.astype(np.float32), c - c0.astype(np.float32)
    flat = padded.reshape(n, -1)
    width = SIZE + 2
    base = np.arange(n)[:, None, None] * width * width
    idx = base + r0 * width + c0
    flat = flat.reshape(-1)
    top = flat[idx] * (1 - fc) + flat[idx + 1] * fc
    bottom = flat[idx + width] * (1 - fc) + flat[idx + width + 1] * fc
    return top * (1 - fr) + bottom * fr


def _thickness(images, cfg, rng):
    """Blend each image toward its grey dilation (bolder) or erosion (thinner) over each
    pixel and its 4 neighbours (a cross, not the 3x3 square)."""
    n = images.shape[0]
    # Thinning is capped: a full erosion erases MNIST's thinnest strokes.
    amount = rng.uniform(-0.6, 1, n).astype(np.float32)
    amount[rng.random(n) >= cfg.thickness_prob] = 0
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1)))
    shifts = [padded[:, 1 + dr:1 + dr + SIZE, 1 + dc:1 + dc + SIZE]
              for dr, dc in ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))]
    stacked = np.stack(shifts)
    bolder, thinner = stacked.max(axis=0), stacked.min(axis=0)
    a = amount[:, None, None]
    target = np.where(a > 0, bolder, thinner)
    return images + np.abs(a) * (target - images)


class Augmenter:
    def __init__(self, config=None):
        self.config = config or AugmentConfig()
        self._gauss = _gaussian_matrix(SIZE, max(self.config.elastic_sigma, 0.5))

    def __call__(self, images, rng):
        """images: float32 (n, 28, 28) in [0, 1]; returns a new augmented batch."""
        cfg = self.config
        n = images.shape[0]
        coords = _affine_source_coords(n, cfg, rng)
        if cfg.elastic_prob > 0:
            coords = coords + _elastic_displacement(n, cfg, rng, self._gauss)
        out = _bilinear(images, coords)
        if cfg.thickness_prob > 0:
            out = _thickness(out, cfg, rng)
        return np.clip(out, 0.0, 1.0, out=out)
