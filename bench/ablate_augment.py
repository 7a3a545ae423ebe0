"""What each augmentation buys: `python -m bench.ablate_augment [--epochs 2] [--train 20000]`.

Trains the CNN briefly with no augmentation, with all of it, and with all but one
family, all from the same seed and data, then measures each model on the MNIST
test set and on canvas-style redraws (tools.canvas_eval: skeletons re-traced with
a round brush in the judged variants). Short runs: the numbers compare recipes,
they are not the shipped model's accuracy.
"""
import argparse
import statistics
import time

import numpy as np

from model import train as trainer
from model.augment import AugmentConfig, Augmenter
from model.datasets import load_mnist, mnist_dir_from_env
from model.inference import Model
from model.network import CNN, Network
from model.optimizers import make_optimizer
from model.parallel import blas_single_threaded
from tools import canvas_eval

FAMILIES = ["rotate", "scale", "shear", "shift", "elastic", "thickness"]


def recipes():
    yield "none", None
    yield "all", AugmentConfig()
    for name in FAMILIES:
        yield f"all - {name}", AugmentConfig.without(name)


def train_one(cfg, data, epochs, n_train, seed):
    rng = np.random.default_rng(seed)
    net = Network(CNN, trainer.NORMALIZATION["shape"], seed=seed)
    opt = make_optimizer("adam", net.parameters(), 2e-3, 0.01)
    with blas_single_threaded():
        state, _, _ = trainer.train(net, opt, data["train_images"][:n_train], data["train_labels"][:n_train],
                                    None, None, epochs=epochs, batch_size=128, base_lr=2e-3, rng=rng,
                                    augmenter=Augmenter(cfg) if cfg else None, log=lambda *_: None)
    meta = {"architecture": CNN, "input": trainer.NORMALIZATION, "weights_sha256": "-"}
    return Model(meta, state)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--train", type=int, default=20000, help="training images per run")
    p.add_argument("--canvas", type=int, default=300, help="MNIST test digits redrawn per variant")
    p.add_argument("--data", default=None)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    data = load_mnist(data_dir=args.data or mnist_dir_from_env())
    test_x, test_y = data["test_images"], data["test_labels"]
    canvas_x, canvas_y = test_x[:args.canvas], test_y[:args.canvas]

    print(f"CNN, {args.epochs} epochs on {args.train} images, seed {args.seed}; canvas: {args.canvas} "
          f"MNIST test digits re-traced with a round brush, per variant")
    header = f"{'recipe':<18}{'MNIST test':>12}{'canvas mean':>13}{'canvas worst':>14}  worst variant     seconds"
    print(header)
    print("-" * len(header))
    for name, cfg in recipes():
        start = time.perf_counter()
        model = train_one(cfg, data, args.epochs, args.train, args.seed)
        mnist_acc = float(np.mean(canvas_eval.predict(model, test_x) == test_y))
        _, results = canvas_eval.evaluate(model, canvas_x, canvas_y, families=("strokes",))
        per_variant = {variant: acc for (_, variant), (acc, _) in results.items()}
        worst = min(per_variant, key=per_variant.get)
        print(f"{name:<18}{mnist_acc * 100:>11.2f}%{statistics.mean(per_variant.values()) * 100:>12.2f}%"
              f"{per_variant[worst] * 100:>13.2f}%  {worst:<16}{time.perf_counter() - start:>8.0f}", flush=True)


if __name__ == "__main__":
    main()
