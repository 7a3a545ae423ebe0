"""Speed and memory of the NumPy engine, with PyTorch (CPU) beside it when installed.

    python -m bench.bench_model [--rounds 5] [--steps 20] [--detected-kernel]

Each case runs in a fresh subprocess (so its peak RSS is its own), and the
NumPy and PyTorch cases alternate round by round, so both see the same noisy
machine; the table reports medians over rounds and the ratio of medians.

OpenBLAS picks its kernels for the CPU it detects, unless OPENBLAS_CORETYPE
(and OPENBLAS_L2_SIZE) say otherwise, as they do on some machines. The table
names the kernel each NumPy case really ran (threadpoolctl: internal_api,
architecture, threads, read inside the case). `--detected-kernel` re-runs this
benchmark in a child process with both variables unset, so OpenBLAS detects
the CPU itself; only the benchmark does that, tests and CI keep the machine's
setting.
"""
import argparse
import json
import multiprocessing as mp
import os
import queue as queue_module
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

EPOCH_IMAGES = 60000
KERNEL_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_seen_blas = []  # the kernel a case ran with, read while it ran


def _numpy_train_step_seconds(arch_name, batch, steps):
    from model.losses import softmax_cross_entropy
    from model.network import ARCHITECTURES, Network
    from model.optimizers import Adam
    from model.parallel import blas_single_threaded
    from model.train import normalize

    rng = np.random.default_rng(0)
    images = rng.random((batch, 28, 28), dtype=np.float32)
    labels = rng.integers(0, 10, batch)
    net = Network(ARCHITECTURES[arch_name], seed=0)
    opt = Adam(net.parameters(), lr=1e-3)
    times = []
    with blas_single_threaded():
        _seen_blas.append(blas_info())
        for i in range(steps + 3):
            start = time.perf_counter()
            x = normalize(images)  # augmentation excluded: PyTorch is timed without it too
            logits = net.forward(x, training=True)
            _, d = softmax_cross_entropy(logits, labels)
            net.backward(d)
            opt.step()
            if i >= 3:  # warm-up steps excluded
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def _torch_model(arch_name):
    import torch.nn as nn
    if arch_name == "cnn":
        return nn.Sequential(
            nn.Conv2d(1, 32, 5, padding=2), nn.MaxPool2d(2), nn.ReLU(),
            nn.Conv2d(32, 64, 5, padding=2), nn.MaxPool2d(2), nn.ReLU(),
            nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Dropout(0.4), nn.Linear(128, 10))
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.2), nn.Linear(256, 10))


def _torch_train_step_seconds(arch_name, batch, steps):
    import torch
    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    net = _torch_model(arch_name)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch.rand(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))
    times = []
    for i in range(steps + 3):
        start = time.perf_counter()
        opt.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        if i >= 3:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def _numpy_inference_seconds(batch, repeats):
    from model.inference import load_model
    model = load_model()
    _seen_blas.append(blas_info())
    x = np.random.default_rng(0).integers(0, 256, (batch, 28, 28), dtype=np.uint8)
    for _ in range(5):
        model.predict_proba(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict_proba(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _torch_inference_seconds(batch, repeats):
    import torch
    torch.set_num_threads(os.cpu_count() or 1)
    net = _torch_model("cnn").eval()
    x = torch.rand(batch, 1, 28, 28)
    times = []
    with torch.inference_mode():
        for _ in range(5):
            torch.softmax(net(x), dim=1)
        for _ in range(repeats):
            start = time.perf_counter()
            torch.softmax(net(x), dim=1)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


CASES = {
    "numpy-train": _numpy_train_step_seconds,
    "torch-train": _torch_train_step_seconds,
    "numpy-infer": _numpy_inference_seconds,
    "torch-infer": _torch_inference_seconds,
}


def _child(name, args, queue):
    try:
        seconds = CASES[name](*args)
    except BaseException as exc:  # the parent waits on the queue: tell it, never die silently
        queue.put(f"{name} failed: {type(exc).__name__}: {exc}")
        raise
    queue.put((seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "; ".join(_seen_blas)))


def run_case(name, *args):
    """One measurement in a fresh process: (median seconds, peak RSS in MiB, BLAS it ran)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(name, args, queue))
    proc.start()
    while True:  # a child killed outright (OOM, a BLAS crash) puts nothing: notice it
        try:
            result = queue.get(timeout=5)
            break
        except queue_module.Empty:
            if not proc.is_alive():
                raise SystemExit(f"benchmark case {name} died (exit code {proc.exitcode}) before reporting") from None
    proc.join()
    if isinstance(result, str):
        raise SystemExit(result)
    return result


def torch_available():
    try:
        import torch  # noqa: F401
        return True
    except ImportError:
        return False


def blas_info():
    """The BLAS NumPy uses right now, as threadpoolctl sees it: library, kernel, threads."""
    from threadpoolctl import threadpool_info
    infos = [f"{i['internal_api']} {i.get('version') or ''} kernel={i.get('architecture') or '?'} "
             f"threads={i['num_threads']}" for i in threadpool_info() if i["user_api"] == "blas"]
    return "; ".join(infos) or "unknown"


def kernel_settings():
    return ", ".join(f"{name}={os.environ.get(name, '(unset)')}" for name in KERNEL_OVERRIDES)


def rerun_with_detected_kernel(argv):
    """Run this benchmark again in a child whose environment lacks the kernel overrides."""
    env = {k: v for k, v in os.environ.items() if k not in KERNEL_OVERRIDES}
    print(f"re-running with {' and '.join(KERNEL_OVERRIDES)} unset (was: {kernel_settings()}), "
          f"so OpenBLAS picks the kernel for the CPU it detects", flush=True)
    return subprocess.run([sys.executable, "-m", "bench.bench_model", *argv], env=env).returncode


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds per case (median reported)")
    p.add_argument("--steps", type=int, default=20, help="training steps timed per round")
    p.add_argument("--json", help="also write the results as JSON here")
    p.add_argument("--detected-kernel", action="store_true",
                   help="run with OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset (OpenBLAS detects the CPU)")
    args = p.parse_args(argv)
    if args.detected_kernel:
        rest = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--detected-kernel"]
        if any(name in os.environ for name in KERNEL_OVERRIDES):
            return rerun_with_detected_kernel(rest)
        print("no kernel override set: running as is")

    with_torch = torch_available()
    rows = [("cnn", "train", 128), ("mlp", "train", 128), ("cnn", "infer", 1), ("cnn", "infer", 256)]
    results = {}
    kernels = {}  # (arch, kind, batch) -> the BLAS the NumPy case reported
    for r in range(args.rounds):
        for arch, kind, batch in rows:
            engines = ["numpy", "torch"] if with_torch else ["numpy"]
            if r % 2:
                engines.reverse()  # alternate who goes first
            for engine in engines:
                if kind == "train":
                    sec, rss, blas = run_case(f"{engine}-train", arch, batch, args.steps)
                else:
                    sec, rss, blas = run_case(f"{engine}-infer", batch, 200 if batch == 1 else 20)
                results.setdefault((arch, kind, batch, engine), []).append((sec, rss))
                if engine == "numpy":
                    kernels.setdefault((arch, kind, batch), set()).add(blas)

    print(f"NumPy {np.__version__}, {os.cpu_count()} cores, {args.rounds} rounds (medians); "
          f"{kernel_settings()}")
    header = f"{'case':<26}{'numpy':>16}{'pytorch':>16}{'numpy/pytorch':>15}{'numpy peak RSS':>16}"
    print(header)
    print("-" * len(header))
    table = []
    for arch, kind, batch in rows:
        n = results[(arch, kind, batch, "numpy")]
        t = results.get((arch, kind, batch, "torch"))
        n_sec = statistics.median(s for s, _ in n)
        n_rss = max(m for _, m in n)
        t_sec = statistics.median(s for s, _ in t) if t else None
        if kind == "train":
            label = f"{arch} train b{batch} img/s"
            n_val, t_val = batch / n_sec, (batch / t_sec if t_sec else None)
            fmt = lambda v: f"{v:,.0f}"  # noqa: E731
            extra = f"  (epoch: numpy {EPOCH_IMAGES / n_val:.0f}s" + (
                f", pytorch {EPOCH_IMAGES / t_val:.0f}s)" if t_val else ")")
        else:
            label = f"{arch} infer b{batch} ms"
            n_val, t_val = n_sec * 1e3, (t_sec * 1e3 if t_sec else None)
            fmt = lambda v: f"{v:.3f}"  # noqa: E731
            extra = ""
        ratio = f"{(n_sec / t_sec):.2f}x time" if t_sec else "-"
        print(f"{label:<26}{fmt(n_val):>16}{(fmt(t_val) if t_val else 'not installed'):>16}"
              f"{ratio:>15}{n_rss:>13.0f} MiB{extra}")
        table.append({"case": label, "numpy": n_val, "pytorch": t_val, "numpy_seconds": n_sec,
                      "pytorch_seconds": t_sec, "numpy_peak_rss_mib": n_rss})
    print("\nBLAS each NumPy case ran with (threadpoolctl, read inside the case):")
    for (arch, kind, batch), seen in kernels.items():
        print(f"  {arch} {kind} b{batch}: {' | '.join(sorted(seen))}")
    for row in table:
        arch, kind, batch = row["case"].split()[0], row["case"].split()[1], int(row["case"].split()[2][1:])
        row["numpy_blas"] = sorted(kernels[(arch, kind, batch)])
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(table, fh, indent=2)


if __name__ == "__main__":
    raise SystemExit(main())
