"""Architectures by name or by a one-line spec: `--arch sigmoid-15` or
`--arch "dense:128,relu,dense:64,relu,dense:10"`.

A spec is comma-separated layers, in order:

    conv:32x5      32 filters, 5x5 kernel, no padding   (conv:32x5p2: padding 2)
    pool:2         2x2 max pooling
    dense:128      fully connected, 128 units
    relu | sigmoid | tanh | flatten
    dropout:0.4    drop 40% of the activations while training

`flatten` is put in by itself before the first dense layer that follows a
convolution (or the raw image), so "dense:10" alone is softmax regression.
The result is the plain list of dicts that the model file stores, checked
against the 28x28 input so a bad spec fails here with the layer it is about,
not later inside NumPy.
"""
import re

from .modelfile import ModelFileError, param_shapes

INPUT_SHAPE = (28, 28, 1)
CLASSES = 10

# The classic from-scratch networks (docs/zoo.md says where each comes from).
PRESETS = {
    "linear": "dense:10",                                     # softmax regression, 784 -> 10
    "sigmoid-15": "dense:15,sigmoid,dense:10",                # 784-15-10, sigmoid hidden layer
    "sigmoid-30": "dense:30,sigmoid,dense:10",                # Nielsen's 784-30-10
    "mlp-128-64": "dense:128,relu,dense:64,relu,dense:10",    # 784-128-64-10, ReLU
    "mlp-128-64-sigmoid": "dense:128,sigmoid,dense:64,sigmoid,dense:10",
    "mlp-128-64-tanh": "dense:128,tanh,dense:64,tanh,dense:10",
}



def names():
    """Every name `resolve` knows: the trainer's built-ins and the classic presets."""
    from .network import ARCHITECTURES  # not at import time: the app reads summaries without the trainer
    return tuple(sorted({*ARCHITECTURES, *PRESETS}))

_ACTIVATIONS = ("relu", "sigmoid", "tanh")
_CONV = re.compile(r"(\d+)x(\d+)(?:p(\d+))?")


class ArchSpecError(ValueError):
    """A spec or name that does not describe a network; the message says how to fix it."""


def _positive_int(text, what, token):
    if not text.isdigit() or int(text) <= 0:
        raise ArchSpecError(f"{token!r}: {what} must be a positive whole number, got {text!r}")
    return int(text)


def _layer(token):
    kind, _, arg = token.partition(":")
    if kind in _ACTIVATIONS or kind == "flatten":
        if arg:
            raise ArchSpecError(f"{token!r}: {kind} takes no argument")
        return {"type": kind}
    examples = {"dense": "dense:128", "conv": "conv:32x5p2", "pool": "pool:2", "dropout": "dropout:0.4"}
    if kind not in examples:
        raise ArchSpecError(f"{token!r}: unknown layer {kind!r}; use dense:N, conv:FxK[pP], pool:N, "
                            "dropout:R, relu, sigmoid, tanh or flatten")
    if not arg:
        raise ArchSpecError(f"{token!r}: {kind} needs an argument, e.g. {examples[kind]}")
    if kind == "dense":
        return {"type": "dense", "units": _positive_int(arg, "the number of units", token)}
    if kind == "pool":
        return {"type": "maxpool2d", "size": _positive_int(arg, "the pool size", token)}
    if kind == "conv":
        match = _CONV.fullmatch(arg)
        if not match:
            raise ArchSpecError(f"{token!r}: write conv:FILTERSxKERNEL or conv:FILTERSxKERNELpPADDING, "
                                "e.g. conv:32x5p2")
        filters, kernel, padding = match.groups()
        layer = {"type": "conv2d", "filters": _positive_int(filters, "the number of filters", token),
                 "kernel": _positive_int(kernel, "the kernel size", token), "padding": int(padding or 0)}
        if layer["padding"] > layer["kernel"] - 1:
            raise ArchSpecError(f"{token!r}: padding {layer['padding']} is more than kernel - 1")
        return layer
    try:  # dropout, the only kind left
        rate = float(arg)
    except ValueError:
        rate = -1.0
    if not 0.0 <= rate < 1.0:  # also refuses nan and inf
        raise ArchSpecError(f"{token!r}: the dropout rate must be a number from 0 up to (not including) 1")
    return {"type": "dropout", "rate": rate}


def parse(spec, input_shape=INPUT_SHAPE, classes=CLASSES):
    """Spec string -> architecture (list of layer dicts), validated."""
    tokens = [t.strip().lower() for t in spec.split(",")]
    if not spec.strip() or any(not t for t in tokens):
        raise ArchSpecError(f"{spec!r}: empty layer in the spec; separate layers with single commas, "
                            "e.g. dense:128,relu,dense:10")
    architecture, flat = [], len(input_shape) == 1
    for token in tokens:
        layer = _layer(token)
        if layer["type"] in ("conv2d", "maxpool2d") and flat:
            raise ArchSpecError(f"{token!r}: a {layer['type']} layer cannot follow a flatten or dense layer")
        if layer["type"] == "dense" and not flat:
            architecture.append({"type": "flatten"})
            flat = True
        if layer["type"] == "flatten":
            if flat:
                continue  # already flat: a second flatten changes nothing
            flat = True
        architecture.append(layer)
    if architecture[-1]["type"] != "dense" or architecture[-1]["units"] != classes:
        raise ArchSpecError(f"{spec!r}: the last layer must be dense:{classes} (one output per digit; "
                            "softmax is applied by the loss)")
    try:
        param_shapes(architecture, input_shape)
    except ModelFileError as exc:
        raise ArchSpecError(f"{spec!r}: {exc}") from None
    return architecture


def resolve(name_or_spec, input_shape=INPUT_SHAPE):
    """A preset name (cnn, mlp, linear, sigmoid-15, ...) or a spec -> architecture."""
    from .network import ARCHITECTURES
    text = name_or_spec.strip()
    if text in ARCHITECTURES:
        return [dict(layer) for layer in ARCHITECTURES[text]]
    if text in PRESETS:
        return parse(PRESETS[text], input_shape)
    if ":" not in text and "," not in text:
        raise ArchSpecError(f"unknown architecture {text!r}; choose one of {', '.join(names())} "
                            "or give a spec such as \"dense:128,relu,dense:64,relu,dense:10\"")
    return parse(text, input_shape)


def summary(architecture, input_shape=INPUT_SHAPE):
    """Short human form, e.g. '784-128(relu)-64(relu)-10' or 'conv32x5p2-pool2-...'."""
    parts = []
    for layer in architecture:
        kind = layer["type"]
        if kind == "flatten":
            if not parts:
                h, w, c = input_shape
                parts.append(str(h * w * c))
        elif kind == "dense":
            parts.append(str(layer["units"]))
        elif kind in _ACTIVATIONS and parts:
            parts[-1] += f"({kind})"
        elif kind == "conv2d":
            padding = f"p{layer['padding']}" if layer.get("padding") else ""
            parts.append(f"conv{layer['filters']}x{layer['kernel']}{padding}")
        elif kind == "maxpool2d":
            parts.append(f"pool{layer['size']}")
        elif kind == "dropout":
            parts.append(f"drop{layer['rate']:g}")
    return "-".join(parts)


def parameter_count(architecture, input_shape=INPUT_SHAPE):
    shapes, _ = param_shapes(architecture, input_shape)
    total = 0
    for shape in shapes.values():
        size = 1
        for s in shape:
            size *= s
        total += size
    return total
