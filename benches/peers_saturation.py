#!/usr/bin/env python3
"""Holds PyTorch and JAX to the exact gradient on the saturating cells of the conformance matrix.

Reads the cells that `cargo run --release -p backprop --example saturation
-- --export PATH` writes (architecture, parameters, batch and the exact
gradient, each as the f32 and the f64 backends see them), computes each
peer's gradient of the same loss in float32 and float64 with its own
autodiff, and prints the norm-wise relative error ||g - g*|| / ||g*||
over the components whose exact value is a normal number of the dtype, as
the `sat` check does. A peer whose package is missing is skipped.

    python3 benches/peers_saturation.py PATH
"""

import importlib.util
import json
import sys

import numpy as np

SMALLEST_NORMAL = {"f32": float(np.finfo(np.float32).tiny), "f64": float(np.finfo(np.float64).tiny)}


def unpack(flat, widths):
    """The flat parameters `W^1, b^1, W^2, b^2, ...` (W^l row-major d_l x d_{l-1}) as (W, b) pairs."""
    layers, offset = [], 0
    for fan_in, fan_out in zip(widths, widths[1:]):
        w = flat[offset:offset + fan_out * fan_in].reshape(fan_out, fan_in)
        offset += fan_out * fan_in
        b = flat[offset:offset + fan_out]
        offset += fan_out
        layers.append((w, b))
    return layers


def relative_error(gradient, exact, dtype):
    keep = np.abs(exact) >= SMALLEST_NORMAL[dtype]
    return float(np.linalg.norm(gradient[keep] - exact[keep]) / np.linalg.norm(exact[keep]))


def torch_gradient(cell, values, dtype):
    import torch

    torch_dtype = torch.float32 if dtype == "f32" else torch.float64
    flat = torch.tensor(values["params"], dtype=torch_dtype, requires_grad=True)
    x = torch.tensor(values["inputs"], dtype=torch_dtype).reshape(cell["rows"], -1)
    y = torch.tensor(values["targets"], dtype=torch_dtype).reshape(cell["rows"], -1)
    a = x
    for (w, b), activation in zip(unpack(flat, cell["widths"]), cell["activations"]):
        z = a @ w.T + b
        a = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "identity": lambda v: v}[activation](z)
    if cell["loss"] == "mse":
        loss = ((y - a) ** 2).sum() / (2 * a.shape[1] * a.shape[0])
    else:
        loss = -(y * torch.log_softmax(a, dim=1)).sum() / a.shape[0]
    loss.backward()
    return flat.grad.detach().double().numpy()


def jax_gradient(cell, values, dtype):
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    jax_dtype = jnp.float32 if dtype == "f32" else jnp.float64
    x = jnp.asarray(values["inputs"], dtype=jax_dtype).reshape(cell["rows"], -1)
    y = jnp.asarray(values["targets"], dtype=jax_dtype).reshape(cell["rows"], -1)

    def loss(flat):
        a = x
        for (w, b), activation in zip(unpack(flat, cell["widths"]), cell["activations"]):
            z = a @ w.T + b
            a = {"sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh, "identity": lambda v: v}[activation](z)
        if cell["loss"] == "mse":
            return ((y - a) ** 2).sum() / (2 * a.shape[1] * a.shape[0])
        return -(y * jax.nn.log_softmax(a, axis=1)).sum() / a.shape[0]

    flat = jnp.asarray(values["params"], dtype=jax_dtype)
    return np.asarray(jax.grad(loss)(flat), dtype=np.float64)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    cells = json.load(open(sys.argv[1]))
    peers = [(name, f) for name, f in [("torch", torch_gradient), ("jax", jax_gradient)]
             if importlib.util.find_spec(name) is not None]
    for name in {"torch", "jax"} - {name for name, _ in peers}:
        print(f"{name} is not installed: skipped")
    print(f"{'cell':<38}" + "".join(f" {name + ' ' + dtype:>12}" for name, _ in peers for dtype in ("f32", "f64")))
    for cell in cells:
        row = f"{cell['name']:<38}"
        for _, gradient in peers:
            for dtype in ("f32", "f64"):
                values = cell[dtype]
                exact = np.asarray(values["exact_gradient"])
                row += f" {relative_error(gradient(cell, values, dtype), exact, dtype):>12.1e}"
        print(row)


if __name__ == "__main__":
    main()
