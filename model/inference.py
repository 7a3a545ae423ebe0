"""Forward-only inference: what the web app imports. NumPy only, no training code."""
import functools
import os
from typing import NamedTuple

import numpy as np

from . import modelfile, ops
from .architecture import param_name, walk

DEFAULT_MODEL_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights", "mnist_cnn.npz")


class Prediction(NamedTuple):
    """What the app needs per image: digit probabilities and whether it is a digit at all."""

    probabilities: np.ndarray  # (N, 10) float32, rows sum to 1: the closest digits
    not_digit: np.ndarray      # (N,) float32 in [0, 1]: the model's belief that it is no digit
    is_digit: np.ndarray       # (N,) bool: not_digit below the threshold stored in the file


class Model:
    """A loaded network: `predict_proba` maps uint8 MNIST-style digits to probabilities."""

    def __init__(self, meta, params, path=None):
        self.meta = meta
        self.path = path
        self.architecture = meta["architecture"]
        norm = meta["input"]
        self.input_shape = tuple(norm["shape"])
        self._steps = walk(self.architecture, self.input_shape)
        self._scale = np.float32(1.0 / (float(norm.get("scale", 255.0)) * float(norm.get("std", 1.0))))
        self._shift = np.float32(float(norm.get("mean", 0.0)) / float(norm.get("std", 1.0)))
        self._params = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in params.items()}
        for arr in self._params.values():
            arr.flags.writeable = False
        self._layers = _layer_functions(self._steps, self._params)
        self._threshold = float(meta["not_digit"]["threshold"]) if "not_digit" in meta else None

    @property
    def identity(self):
        """Short, stable name for logs and API responses."""
        return {"name": self.meta.get("name", "model"),
                "sha256": self.meta["weights_sha256"][:12],
                "test_accuracy": self.meta.get("test_accuracy")}

    def normalize(self, images):
        x = np.asarray(images)
        if x.ndim == 2:
            x = x[None]
        if x.shape[1:3] != self.input_shape[:2]:
            raise ValueError(f"expected images of shape (N, {self.input_shape[0]}, {self.input_shape[1]}), "
                             f"got {x.shape}")
        x = x.astype(np.float32) * self._scale - self._shift
        return x.reshape(x.shape[0], *self.input_shape)

    def logits(self, images):
        x = self.normalize(images)
        for layer in self._layers:
            x = layer(x)
        return x

    @property
    def rejects(self):
        """True when the network has an extra output for "not a digit" (see `predict`)."""
        return "not_digit" in self.meta

    def predict(self, images):
        """(N, 28, 28) uint8 -> Prediction.

        A model trained with a "not a digit" class has an 11th output; its
        softmax share is the not-a-digit score, compared with the threshold
        the trainer calibrated on held-out writers (meta "not_digit"). The
        ten digit probabilities are renormalised without it, so they still
        name the closest digit. A plain ten-output model never rejects.
        """
        full = ops.softmax(self.logits(images).astype(np.float32))  # logits are float32: a copy of (N, 11)
        if self._threshold is None:
            none = np.zeros(len(full), np.float32)
            return Prediction(full, none, np.ones(len(full), bool))
        not_digit = full[:, 10].copy()
        digits = full[:, :10]
        digits /= digits.sum(axis=1, keepdims=True)
        return Prediction(np.ascontiguousarray(digits), not_digit, not_digit < self._threshold)

    def predict_proba(self, images):
        """(N, 28, 28) uint8, white ink on black, 0-255 -> float32 (N, 10), rows sum to 1."""
        return self.predict(images).probabilities


def _relu_in_place(x):
    """ReLU on an array only the forward pass holds (every layer returns a new one)."""
    return np.maximum(x, 0, out=x)


def _flatten(x):
    return x.reshape(x.shape[0], -1)


def _layer_functions(steps, params):
    """One function per layer with its parameters bound, built once at load:
    the forward pass then does no name lookups or settings parsing per image
    (a batch of one spent a tenth of its time there). Dropout is the identity
    at inference and is left out. A dense layer fed by a ReLU skips the
    inputs the ReLU zeroed (see ops.dense_skipping_zeros)."""
    layers = []
    after_relu = False  # the input of this step is a ReLU's output, only reshaped since
    for step in steps:
        spec, kind = step.spec, step.kind
        weights = {key: params[param_name(step.index, key)] for key in ("W", "b")
                   if param_name(step.index, key) in params}
        if kind == "conv2d":
            layers.append(functools.partial(ops.conv2d, weight=weights["W"], bias=weights["b"],
                                            padding=int(spec.get("padding", 0))))
        elif kind == "maxpool2d":
            layers.append(functools.partial(ops.maxpool, size=int(spec["size"])))
        elif kind == "relu":
            layers.append(_relu_in_place)
        elif kind == "sigmoid":
            layers.append(ops.sigmoid)
        elif kind == "tanh":
            layers.append(ops.tanh)
        elif kind == "flatten":
            layers.append(_flatten)
        elif kind == "dense":
            dense = ops.dense_skipping_zeros if after_relu else ops.dense
            layers.append(functools.partial(dense, weight=weights["W"], bias=weights["b"]))
        after_relu = kind == "relu" or (after_relu and kind in ("flatten", "dropout"))
    return layers


def load_model(path=None):
    """Load and validate a model file (the shipped one by default).

    Not cached: callers (the app factory) load once at start-up and keep it.
    """
    path = os.path.abspath(os.fspath(path or DEFAULT_MODEL_PATH))
    meta, params = modelfile.load(path)
    return Model(meta, params, path)
