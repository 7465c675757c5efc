#!/usr/bin/env python3
"""Times one SGD step of the benchmark shapes in numpy by hand, JAX jit and PyTorch eager.

The step is the one the Rust backends take (benches/step.rs): a sigmoid
hidden and output layer, MSE loss J = sum((A2 - Y)^2) / (2 m B), forward,
backward, and theta -= lr * dJ/dtheta, on S (64-32-10, batch 64), M
(784-256-10, batch 128) and L (1024-1024-1024, batch 1024), in f32 and f64.
Each peer's step is timed over many steps after a warm-up; a round times
every shape, dtype and peer in turn, and the summary gives the median over
the rounds of each round's median, in microseconds per step. A peer whose
package is missing is skipped, and said so.

    python3 benches/peers.py [--shapes S,M,L] [--dtypes f32,f64]
                             [--peers numpy,jax,torch] [--rounds 3]

Lines starting with `step` give one round's result each (`step ROUND SHAPE
DTYPE PEER US`), in the format of `cargo run --release -p backprop-rayon
--example steps`, so that a script can interleave the two and pool the
lines. To time numpy's own BLAS kernels, unset OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE for this command (the script prints which BLAS numpy uses
when threadpoolctl is installed).
"""

import argparse
import importlib.util
import os
import statistics
import sys
import time

SHAPES = {
    "S": ((64, 32, 10), 64, 2001),
    "M": ((784, 256, 10), 128, 301),
    "L": ((1024, 1024, 1024), 1024, 15),
}
LEARNING_RATE = 1e-6


def data(np, widths, rows, dtype):
    """Inputs, targets and Glorot-uniform weights with zero biases, as the Rust benches have them."""
    n, h, m = widths
    rng = np.random.default_rng(1)
    x = ((np.arange(rows * n) * 7 % 17) / 17.0).reshape(rows, n).astype(dtype)
    y = (np.arange(rows * m) % 2).reshape(rows, m).astype(dtype)
    params = []
    for fan_in, fan_out in ((n, h), (h, m)):
        limit = (6.0 / (fan_in + fan_out)) ** 0.5
        params.append(rng.uniform(-limit, limit, (fan_out, fan_in)).astype(dtype))
        params.append(np.zeros(fan_out, dtype))
    return x, y, params


def median_step(step, reps, sync=lambda: None):
    """The median seconds per call of `step` over `reps` calls after two warm-up calls."""
    step()
    step()
    sync()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def numpy_peer(widths, rows, dtype):
    import numpy as np

    x, y, params = data(np, widths, rows, dtype)
    w1, b1, w2, b2 = params
    m = widths[2]
    lr = dtype(LEARNING_RATE)
    one = dtype(1)
    scale = dtype(1.0 / (m * rows))

    def sigmoid(z):
        with np.errstate(over="ignore"):
            return one / (one + np.exp(-z))

    def step():
        a1 = sigmoid(x @ w1.T + b1)
        a2 = sigmoid(a1 @ w2.T + b2)
        error = a2 - y
        loss = dtype(0.5) * scale * np.sum(error * error)
        d2 = (error * scale) * a2 * (one - a2)
        g_w2 = d2.T @ a1
        g_b2 = d2.sum(axis=0)
        d1 = (d2 @ w2) * a1 * (one - a1)
        g_w1 = d1.T @ x
        g_b1 = d1.sum(axis=0)
        for param, grad in zip(params, (g_w1, g_b1, g_w2, g_b2)):
            param -= lr * grad
        return loss

    return step, lambda: None


def jax_peer(widths, rows, dtype):
    import jax
    import jax.numpy as jnp
    import numpy as np

    if dtype == np.float64:
        jax.config.update("jax_enable_x64", True)
    x, y, params = data(np, widths, rows, dtype)
    x, y = jnp.asarray(x), jnp.asarray(y)
    params = [jnp.asarray(p) for p in params]
    m = widths[2]

    def loss_fn(params, x, y):
        w1, b1, w2, b2 = params
        a1 = jax.nn.sigmoid(x @ w1.T + b1)
        a2 = jax.nn.sigmoid(a1 @ w2.T + b2)
        return jnp.sum((a2 - y) ** 2) / (2 * m * rows)

    @jax.jit
    def sgd(params, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        return [p - LEARNING_RATE * g for p, g in zip(params, grads)], loss

    sgd = jax.jit(sgd, donate_argnums=0)
    state = {"params": params, "loss": None}

    def step():
        state["params"], state["loss"] = sgd(state["params"], x, y)

    def sync():
        state["loss"].block_until_ready()

    return step, sync


def torch_peer(widths, rows, dtype):
    import numpy as np
    import torch

    x, y, params = data(np, widths, rows, dtype)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    params = [torch.from_numpy(p).requires_grad_() for p in params]
    optimizer = torch.optim.SGD(params, lr=LEARNING_RATE)
    w1, b1, w2, b2 = params
    m = widths[2]

    def step():
        optimizer.zero_grad(set_to_none=True)
        a1 = torch.sigmoid(torch.nn.functional.linear(x, w1, b1))
        a2 = torch.sigmoid(torch.nn.functional.linear(a1, w2, b2))
        loss = torch.sum((a2 - y) ** 2) / (2 * m * rows)
        loss.backward()
        optimizer.step()
        return loss

    return step, lambda: None


PEERS = {
    "numpy": ("numpy", numpy_peer),
    "jax": ("jax", jax_peer),
    "torch": ("torch", torch_peer),
}


def describe(peers):
    """Prints each peer's version and threads, and which BLAS numpy uses."""
    for name in peers:
        module = __import__(PEERS[name][0])
        print(f"# {name} {module.__version__}", end="")
        if name == "torch":
            print(f", {module.get_num_threads()} threads", end="")
        if name == "jax":
            print(f", {module.devices()}", end="")
        print()
    if "numpy" in peers and importlib.util.find_spec("threadpoolctl"):
        import numpy  # noqa: F401  (loads its BLAS for threadpoolctl)
        from threadpoolctl import threadpool_info

        for pool in threadpool_info():
            print(
                f"# numpy BLAS: {pool.get('internal_api')} {pool.get('version')}"
                f" {pool.get('architecture')} {pool.get('num_threads')} threads"
            )
    blas_env = {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")}
    if blas_env:
        print(f"# note: {blas_env} set; numpy's OpenBLAS may run a slower kernel")


def run_isolated(args, peers):
    """Runs each peer in a process of its own, round after round, and summarises.

    PyTorch's OpenMP threads and numpy's OpenBLAS threads spin while they wait
    for work; in one process they take each other's cores.
    """
    import subprocess

    times = {}
    for r in range(args.rounds):
        for peer in peers:
            command = [sys.executable, __file__, "--shapes", args.shapes, "--dtypes", args.dtypes]
            command += ["--peers", peer, "--rounds", "1", "--first-round", str(args.first_round + r)]
            output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            for line in output.splitlines():
                if line.startswith("step "):
                    print(line, flush=True)
                    _, _, shape, dtype, name, us = line.split()
                    times.setdefault((shape, dtype, name), []).append(float(us))
                elif line.startswith("#") and r == 0:
                    print(line, flush=True)
    print(f"medians of {args.rounds} rounds, us per step:")
    for (shape, dtype, peer), ts in sorted(times.items()):
        print(f"{shape} {dtype} {peer} {statistics.median(ts):.1f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="S,M,L")
    parser.add_argument("--dtypes", default="f32,f64")
    parser.add_argument("--peers", default="numpy,jax,torch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--first-round", type=int, default=0, help="number of the first round printed")
    parser.add_argument("--in-process", action="store_true", help="time every peer in this process")
    args = parser.parse_args()

    peers = []
    for name in args.peers.split(","):
        if name not in PEERS:
            sys.exit(f"unknown peer {name!r}; known: {', '.join(PEERS)}")
        if importlib.util.find_spec(PEERS[name][0]) is None:
            print(f"# skipped {name}: the package '{PEERS[name][0]}' is not installed")
        else:
            peers.append(name)
    if not peers:
        print("# no peer to time")
        return
    if len(peers) > 1 and not args.in_process:
        run_isolated(args, peers)
        return
    import numpy as np

    describe(peers)
    dtypes = {"f32": np.float32, "f64": np.float64}
    cases = []
    for shape in args.shapes.split(","):
        widths, rows, reps = SHAPES[shape]
        for dtype in args.dtypes.split(","):
            for peer in peers:
                step, sync = PEERS[peer][1](widths, rows, dtypes[dtype])
                case_reps = reps if dtype == "f32" else reps // 2 + 1
                cases.append((shape, dtype, peer, step, sync, case_reps))
    times = {}
    for r in range(args.rounds):
        for shape, dtype, peer, step, sync, reps in cases:
            t = median_step(step, reps, sync)
            times.setdefault((shape, dtype, peer), []).append(t)
            print(f"step {args.first_round + r} {shape} {dtype} {peer} {t * 1e6:.3f}", flush=True)
    print(f"medians of {args.rounds} rounds, us per step:")
    for (shape, dtype, peer), ts in times.items():
        print(f"{shape} {dtype} {peer} {statistics.median(ts) * 1e6:.1f}")


if __name__ == "__main__":
    main()
