"""A sequential network built from the plain architecture description that is
also stored in the model file's meta, so the file alone says how to rebuild it."""
import numpy as np

from . import layers
from .architecture import param_name, walk

CNN = [
    {"type": "conv2d", "filters": 32, "kernel": 5, "padding": 2},
    {"type": "maxpool2d", "size": 2},
    {"type": "relu"},
    {"type": "conv2d", "filters": 64, "kernel": 5, "padding": 2},
    {"type": "maxpool2d", "size": 2},
    {"type": "relu"},
    {"type": "flatten"},
    {"type": "dense", "units": 128},
    {"type": "relu"},
    {"type": "dropout", "rate": 0.4},
    {"type": "dense", "units": 10},
]

MLP = [
    {"type": "flatten"},
    {"type": "dense", "units": 256},
    {"type": "relu"},
    {"type": "dropout", "rate": 0.2},
    {"type": "dense", "units": 10},
]

ARCHITECTURES = {"cnn": CNN, "mlp": MLP}


class Network:
    def __init__(self, architecture, input_shape=(28, 28, 1), seed=0):
        self.architecture = [dict(layer) for layer in architecture]
        self.input_shape = tuple(input_shape)
        rng = np.random.default_rng(seed)
        self.layers = []
        for step in walk(self.architecture, self.input_shape):  # validates the description
            index, spec, kind, shape = step.index, step.spec, step.kind, step.in_shape
            if kind == "conv2d":
                layer = layers.Conv2D(shape[-1], spec["filters"], spec["kernel"], spec.get("padding", 0),
                                      rng, needs_input_grad=index > 0)
            elif kind == "maxpool2d":
                layer = layers.MaxPool2D(spec["size"])
            elif kind == "relu":
                layer = layers.ReLU()
            elif kind == "sigmoid":
                layer = layers.Sigmoid()
            elif kind == "tanh":
                layer = layers.Tanh()
            elif kind == "flatten":
                layer = layers.Flatten()
            elif kind == "dense":
                layer = layers.Dense(shape[0], spec["units"], rng)
            elif kind == "dropout":
                layer = layers.Dropout(spec["rate"], rng)
            self.layers.append(layer)

    def forward(self, x, training=False):
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def backward(self, dy):
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
            if dy is None:  # the first conv does not compute an input gradient
                break

    def parameters(self):
        """(param, grad, decays) triples for the optimizer; biases are not decayed."""
        return [(layer.params[k], layer.grads[k], k == "W")
                for layer in self.layers for k in layer.params]

    def state_dict(self):
        """Arrays named as in the model file: '<layer index>.<param>'."""
        return {param_name(i, k): v.copy() for i, layer in enumerate(self.layers) for k, v in layer.params.items()}

    def load_state_dict(self, state):
        for i, layer in enumerate(self.layers):
            for k in layer.params:
                layer.params[k][...] = state[param_name(i, k)]
