"""The architecture description's one shape walk.

A model is a list of plain layer descriptions (stored in the model file's
meta). The file validator, the trainer's Network and the inference module all
need each layer's input shape, output shape and parameter arrays; they get them
from `walk`, so a new layer type or a changed formula is written once.
"""
from typing import NamedTuple

import numpy as np

from .ops import conv_output_size


class ArchitectureError(ValueError):
    """An architecture description that cannot be built; the message names the layer."""


class Step(NamedTuple):
    """One layer of the walk: its description and the shapes around it (per image)."""

    index: int
    kind: str
    spec: dict
    in_shape: tuple
    out_shape: tuple
    params: dict  # {file name ("<index>.<key>"): shape}


def param_name(index, key):
    """How a layer's parameter is named in the model file and in `state_dict`."""
    return f"{index}.{key}"


def _layer_shapes(index, kind, layer, shape):
    """(output shape, {param key: shape}) of one layer, or ArchitectureError."""
    if kind == "conv2d":
        h, w, c = shape
        k, p, f = int(layer["kernel"]), int(layer.get("padding", 0)), int(layer["filters"])
        return (conv_output_size(h, k, p), conv_output_size(w, k, p), f), {"W": (k, k, c, f), "b": (f,)}
    if kind == "maxpool2d":
        h, w, c = shape
        s = int(layer["size"])
        if h % s or w % s:
            raise ArchitectureError(f"layer {index}: pool size {s} does not divide {h}x{w}")
        return (h // s, w // s, c), {}
    if kind == "flatten":
        return (int(np.prod(shape)),), {}
    if kind == "dense":
        (d,) = shape
        u = int(layer["units"])
        return (u,), {"W": (d, u), "b": (u,)}
    if kind in ("relu", "dropout", "sigmoid", "tanh"):  # parameter-free, shape-preserving
        return shape, {}
    raise ArchitectureError(f"layer {index}: unknown layer type {kind!r}")


def walk(architecture, input_shape):
    """Steps from an (H, W, C) input through `architecture`; raises ArchitectureError on nonsense."""
    shape = tuple(int(s) for s in input_shape)
    steps = []
    for index, layer in enumerate(architecture):
        kind = layer.get("type") if isinstance(layer, dict) else None
        try:
            out_shape, params = _layer_shapes(index, kind, layer, shape)
        except ArchitectureError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise ArchitectureError(f"layer {index} ({kind}): malformed description: {exc}") from None
        if min(out_shape) <= 0:
            raise ArchitectureError(f"layer {index} ({kind}): output shape {out_shape} is empty")
        steps.append(Step(index, kind, layer, shape, out_shape,
                          {param_name(index, key): s for key, s in params.items()}))
        shape = out_shape
    return steps
