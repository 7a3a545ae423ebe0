"""Weight averaging (SWA): the mean it keeps, when it snapshots, and the trainer's --init path."""
import numpy as np
import pytest

from model import modelfile
from model import train as trainer
from model.averaging import WeightAverage, snapshot_every
from model.network import MLP, Network
from model.optimizers import make_optimizer


def test_the_average_is_the_elementwise_mean_in_float32():
    average = WeightAverage()
    states = [{"0.W": np.full((2, 3), v, np.float32), "0.b": np.array([v, -v], np.float32)} for v in (1.0, 2.0, 6.0)]
    for state in states:
        average.add(state)
    mean = average.mean()
    assert average.count == 3
    assert mean["0.W"].dtype == np.float32 and mean["0.W"].shape == (2, 3)
    np.testing.assert_array_equal(mean["0.W"], np.full((2, 3), 3.0, np.float32))
    np.testing.assert_array_equal(mean["0.b"], np.array([3.0, -3.0], np.float32))


def test_the_average_does_not_alias_the_snapshots():
    """The trainer hands in the live weights' copies; a later step must not move the mean."""
    average = WeightAverage()
    state = {"w": np.ones(4, np.float32)}
    average.add(state)
    state["w"] += 10
    np.testing.assert_array_equal(average.mean()["w"], np.ones(4, np.float32))


def test_an_empty_average_is_an_error_not_zeros():
    with pytest.raises(ValueError, match="no weights"):
        WeightAverage().mean()


@pytest.mark.parametrize("steps,per_epoch,every", [(100, 4, 25), (10, 4, 2), (3, 4, 1), (7, 1, 7), (5, 0, 5)])
def test_snapshots_are_spread_over_the_epoch(steps, per_epoch, every):
    assert snapshot_every(steps, per_epoch) == every


def test_train_averaged_returns_the_mean_of_the_snapshots_it_took():
    """With 2 epochs of 8 steps and 4 snapshots an epoch, the result is the mean of
    the weights after steps 2, 4, ..., 16: recomputed here by replaying the run."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(512, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, size=512)

    def fresh():
        net = Network(MLP, seed=3)
        return net, make_optimizer("adam", net.parameters(), 1e-3, 0.0)

    net, opt = fresh()
    averaged = trainer.train_averaged(net, opt, x, y, epochs=2, batch_size=64, lr=1e-3,
                                      rng=np.random.default_rng(1), per_epoch=4, log=lambda *_: None)
    replay, replay_opt = fresh()
    seen = []
    trainer.train(replay, replay_opt, x, y, None, None, epochs=2, batch_size=64, base_lr=1e-3,
                  rng=np.random.default_rng(1), warmup_epochs=0, log=lambda *_: None,
                  schedule=lambda *a: 1e-3,
                  after_step=lambda step, per: seen.append(replay.state_dict()) if step % 2 == 0 else None)
    assert len(seen) == 8
    for name, value in averaged.items():
        expected = np.mean([s[name].astype(np.float64) for s in seen], axis=0)
        np.testing.assert_allclose(value, expected, rtol=1e-6, atol=1e-7)
    first = next(iter(averaged))
    assert not np.array_equal(averaged[first], seen[-1][first]), "the last weights, not an average"


def test_init_weights_loads_a_model_and_refuses_another_architecture(tmp_path):
    source = Network(MLP, seed=7)
    path = tmp_path / "mlp.npz"
    modelfile.save(path, {"name": "t", "architecture": MLP, "input": trainer.NORMALIZATION}, source.state_dict())
    target = Network(MLP, seed=8)
    trainer.init_weights(target, MLP, str(path))
    for name, value in source.state_dict().items():
        np.testing.assert_array_equal(target.state_dict()[name], value)
    other = [dict(layer) for layer in MLP]
    other[1] = {"type": "sigmoid"}
    with pytest.raises(SystemExit, match="architecture"):
        trainer.init_weights(Network(other, seed=8), other, str(path))
