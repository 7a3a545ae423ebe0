"""`--arch`: presets and one-line specs become the architecture the model file
stores, and a bad spec is refused with a message that names the problem."""
import numpy as np
import pytest

from model import archspec
from model import train as trainer
from model.inference import Model
from model.modelfile import param_shapes
from model.network import CNN, MLP, Network


def test_presets_are_the_classic_networks():
    shapes = {name: [s for k, s in param_shapes(archspec.resolve(name), (28, 28, 1))[0].items() if k.endswith(".W")]
              for name in ("linear", "sigmoid-15", "mlp-128-64", "mlp-128-64-sigmoid")}
    assert shapes["linear"] == [(784, 10)]
    assert shapes["sigmoid-15"] == [(784, 15), (15, 10)]
    assert shapes["mlp-128-64"] == shapes["mlp-128-64-sigmoid"] == [(784, 128), (128, 64), (64, 10)]
    hidden = [layer["type"] for layer in archspec.resolve("sigmoid-15")]
    assert hidden == ["flatten", "dense", "sigmoid", "dense"]
    assert [layer["type"] for layer in archspec.resolve("mlp-128-64")].count("relu") == 2
    assert archspec.resolve("cnn") == CNN and archspec.resolve("mlp") == MLP


def test_a_spec_spells_out_the_shipped_cnn():
    spec = "conv:32x5p2,pool:2,relu,conv:64x5p2,pool:2,relu,flatten,dense:128,relu,dropout:0.4,dense:10"
    assert archspec.resolve(spec) == CNN
    # flatten is implied before the first dense layer; spaces and case do not matter
    assert archspec.resolve(" Dense:128, RELU, dense:64, relu, dense:10 ") == archspec.resolve("mlp-128-64")


def test_summary_and_parameter_count():
    arch = archspec.resolve("mlp-128-64")
    assert archspec.summary(arch) == "784-128(relu)-64(relu)-10"
    assert archspec.parameter_count(arch) == 784 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10
    assert archspec.summary(archspec.resolve("linear")) == "784-10"
    net = Network(archspec.resolve("sigmoid-15"))
    assert archspec.parameter_count(net.architecture) == sum(p.size for p, _, _ in net.parameters())


@pytest.mark.parametrize("spec,message", [
    ("resnet", "unknown architecture 'resnet'; choose one of"),
    ("", "unknown architecture"),
    ("dense:128,relu", "last layer must be dense:10"),
    ("dense:128,relu,dense:12", "last layer must be dense:10"),
    ("dense:0,dense:10", "number of units must be a positive whole number"),
    ("dense:lots,dense:10", "number of units must be a positive whole number"),
    ("dense,dense:10", "dense needs an argument, e.g. dense:128"),
    ("conv:32,dense:10", "conv:FILTERSxKERNEL"),
    ("conv:8x3p5,dense:10", "padding 5 is more than kernel - 1"),
    ("conv:8x40,dense:10", "output shape (-11, -11, 8) is empty"),
    ("dense:32,conv:8x3,dense:10", "cannot follow a flatten or dense layer"),
    ("pool:3,dense:10", "pool size 3 does not divide 28x28"),
    ("dropout:1,dense:10", "dropout rate must be a number from 0"),
    ("dropout:x,dense:10", "dropout rate must be a number from 0"),
    ("relu:2,dense:10", "relu takes no argument"),
    ("dense:32,,dense:10", "empty layer in the spec"),
    ("softplus,dense:10", "unknown layer 'softplus'"),
])
def test_spec_errors_name_the_problem(spec, message):
    with pytest.raises(archspec.ArchSpecError) as excinfo:
        archspec.resolve(spec)
    assert message in str(excinfo.value)


def test_the_trainer_refuses_a_bad_arch_as_a_usage_error(capsys):
    with pytest.raises(SystemExit) as excinfo:
        trainer.parse_args(["--arch", "dense:64,relu"])
    assert excinfo.value.code == 2
    assert "last layer must be dense:10" in capsys.readouterr().err
    assert trainer.parse_args(["--arch", "dense:64,tanh,dense:10"]).arch == "dense:64,tanh,dense:10"


def test_inference_runs_sigmoid_and_tanh_like_the_trainer():
    """The web app's forward pass (model/inference.py) matches the training network's."""
    arch = archspec.resolve("dense:16,sigmoid,dense:12,tanh,dense:10")
    net = Network(arch, seed=4)
    images = np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    meta = {"architecture": arch, "input": trainer.NORMALIZATION, "weights_sha256": "0" * 64}
    model = Model(meta, net.state_dict())
    np.testing.assert_allclose(model.logits(images), trainer.predict_logits(net, images), rtol=1e-5, atol=1e-5)
