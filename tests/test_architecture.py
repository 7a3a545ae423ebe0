"""The one shape walk: what every layer of an architecture takes, gives and holds."""
import pytest

from model.architecture import ArchitectureError, param_name, walk
from model.network import CNN, MLP, Network


def test_cnn_walk_by_hand():
    """Shapes written out from the layer definitions (stride-1 'same' convs, 2x2 pools)."""
    steps = walk(CNN, (28, 28, 1))
    assert [s.out_shape for s in steps] == [
        (28, 28, 32), (14, 14, 32), (14, 14, 32), (14, 14, 64), (7, 7, 64), (7, 7, 64),
        (3136,), (128,), (128,), (128,), (10,)]
    assert [s.in_shape for s in steps[1:]] == [s.out_shape for s in steps[:-1]]
    assert steps[0].in_shape == (28, 28, 1)
    params = {name: shape for s in steps for name, shape in s.params.items()}
    assert params == {"0.W": (5, 5, 1, 32), "0.b": (32,), "3.W": (5, 5, 32, 64), "3.b": (64,),
                      "7.W": (3136, 128), "7.b": (128,), "10.W": (128, 10), "10.b": (10,)}
    assert [s.kind for s in steps][:3] == ["conv2d", "maxpool2d", "relu"]
    assert [s.index for s in steps] == list(range(len(CNN)))


def test_valid_convolution_shrinks_the_image():
    (step,) = walk([{"type": "conv2d", "filters": 4, "kernel": 3}], (10, 12, 2))
    assert step.out_shape == (8, 10, 4)
    assert step.params == {"0.W": (3, 3, 2, 4), "0.b": (4,)}


@pytest.mark.parametrize("arch", [CNN, MLP], ids=["cnn", "mlp"])
def test_network_layers_hold_the_walks_parameters(arch):
    net = Network(arch, seed=0)
    state = net.state_dict()
    expected = {name: shape for s in walk(arch, (28, 28, 1)) for name, shape in s.params.items()}
    assert {name: a.shape for name, a in state.items()} == expected


def test_param_name():
    assert param_name(3, "W") == "3.W"


@pytest.mark.parametrize("arch,shape,message", [
    ([{"type": "maxpool2d", "size": 3}], (28, 28, 1), "does not divide 28x28"),
    ([{"type": "softmax"}], (28, 28, 1), "unknown layer type 'softmax'"),
    ([{"kind": "conv2d"}], (28, 28, 1), "unknown layer type None"),
    ([{"type": "conv2d", "kernel": 3}], (28, 28, 1), r"layer 0 \(conv2d\): malformed"),
    ([{"type": "dense", "units": 10}], (28, 28, 1), r"layer 0 \(dense\): malformed"),
    ([{"type": "conv2d", "filters": 2, "kernel": 9}], (8, 8, 1), r"output shape \(0, 0, 2\) is empty"),
    ([{"type": "flatten"}, {"type": "dense", "units": 0}], (4, 4, 1), "is empty"),
])
def test_nonsense_is_refused_naming_the_layer(arch, shape, message):
    with pytest.raises(ArchitectureError, match=message):
        walk(arch, shape)
    with pytest.raises(ValueError, match=message):
        Network(arch, input_shape=shape)
