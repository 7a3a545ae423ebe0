"""Each classic preset learns MNIST on this engine: a short real run on a sample
of the training set must clear the floor its tutorial's network is known for."""
import time

import numpy as np
import pytest

from model import archspec
from model import train as trainer
from model.losses import LOSSES
from model.network import Network
from model.optimizers import SCHEDULES, make_optimizer
from model.parallel import blas_single_threaded
from tests.mnist_data import mnist

pytestmark = [pytest.mark.mnist, pytest.mark.slow]

# (preset, optimizer, lr, batch, loss, schedule, training images, epochs, floor on the 10,000 test images).
# Floors sit 1-2.5 points under what these seeded runs reach (linear 89.2%, sigmoid-15 91.0%,
# sigmoid-30 with the quadratic cost 92.5%, mlp-128-64 96.4%, its sigmoid twin 96.3%, mlp 96.6%);
# each run is a few CPU-seconds on an idle machine.
RUNS = [
    ("linear", "sgd", 0.05, 10, "cross-entropy", "constant", 20000, 2, 0.88),
    ("sigmoid-15", "sgd", 0.1, 10, "cross-entropy", "constant", 20000, 2, 0.90),
    ("sigmoid-30", "sgd", 1.0, 10, "quadratic", "constant", 20000, 2, 0.90),
    ("mlp-128-64", "adam", 1e-3, 32, "cross-entropy", "warmup-cosine", 30000, 2, 0.95),
    ("mlp-128-64-sigmoid", "adam", 2e-3, 32, "cross-entropy", "warmup-cosine", 30000, 3, 0.95),
    ("mlp", "adam", 1e-3, 32, "cross-entropy", "warmup-cosine", 30000, 2, 0.95),
]


@pytest.mark.parametrize("preset,optimizer,lr,batch,loss,schedule,n_train,epochs,floor", RUNS,
                         ids=[r[0] for r in RUNS])
def test_preset_trains_above_its_floor(preset, optimizer, lr, batch, loss, schedule, n_train, epochs, floor):
    data = mnist()
    x, y = data["train_images"][:n_train], data["train_labels"][:n_train]
    net = Network(archspec.resolve(preset), seed=1)
    opt = make_optimizer(optimizer, net.parameters(), lr, 0.0, momentum=0.0)  # plain SGD, as the tutorials
    started = time.perf_counter()
    with blas_single_threaded():  # as the trainer runs: no BLAS threads spinning against each other
        state, history, _ = trainer.train(net, opt, x, y, None, None, epochs=epochs, batch_size=batch, base_lr=lr,
                                          rng=np.random.default_rng(1), warmup_epochs=0, log=lambda *_: None,
                                          schedule=SCHEDULES[schedule], loss_fn=LOSSES[loss])
        net.load_state_dict(state)
        acc = trainer.accuracy(net, data["test_images"], data["test_labels"])
    print(f"{preset}: {acc:.2%} after {epochs} epochs on {n_train} images in {time.perf_counter() - started:.1f}s")
    assert history[-1]["loss"] < history[0]["loss"]
    assert acc >= floor, f"{preset} reached {acc:.2%}, below its floor {floor:.0%}"
