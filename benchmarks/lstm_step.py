"""LSTM train step and prediction pass: pdm-ray's Flax LSTM against PyTorch's ``nn.LSTM``.

Shapes are the paper's (Hundman et al. 2018): batch 64, windows of 250 steps, 25 features,
2 x 80 LSTM with dropout 0.3, 10 outputs, Adam, MSE. The prediction pass covers 8,000 windows
in batches of 1,024. Both sides run in one process and alternate repetition by repetition, so
load from other jobs on the machine hits both alike. Prints medians (and minima) in ms.

``--one-core`` runs both sides on one core (the process pinned, XLA's one-thread flags,
``torch.set_num_threads(1)``), as one benchmark task or sweep trial gets; without it each
side uses the threads it wants. A task also gets glibc's huge pages (``pdm_ray.cores``), which
glibc reads only at start: launch with ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` to match it.

PyTorch is a benchmark-only extra, never imported by ``pdm_ray``:
``.venv/bin/pip install torch==2.13.0``. Run: ``JAX_PLATFORMS=cpu .venv/bin/python benchmarks/lstm_step.py``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

from pdm_ray.cores import ONE_CORE_ENV

os.environ.setdefault("JAX_PLATFORMS", "cpu")
if "--one-core" in sys.argv:  # XLA reads its flags when JAX starts
    os.environ.update(ONE_CORE_ENV)

import jax
import numpy as np
import torch

from pdm_ray.config import LSTMSettings, TrainSettings
from pdm_ray.models import ModelSpec, TrainedModel, predict, train_step
from pdm_ray.models.training import create_train_state

BATCH, L_S, N_FEATURES, N_PRED, HIDDEN = 64, 250, 25, 10, 80
PRED_WINDOWS, PRED_BATCH = 8000, 1024


class TorchLSTM(torch.nn.Module):
    """The same network in PyTorch: 2 x 80 LSTM, dropout 0.3 between and after, dense head."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = torch.nn.LSTM(N_FEATURES, HIDDEN, num_layers=2, batch_first=True, dropout=0.3)
        self.dropout = torch.nn.Dropout(0.3)
        self.head = torch.nn.Linear(HIDDEN, N_PRED)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(self.dropout(out[:, -1]))


def flax_side(x: np.ndarray, y: np.ndarray, x_pred: np.ndarray) -> tuple[Callable[[], None], Callable[[], None]]:
    spec = ModelSpec("lstm", N_FEATURES, L_S, N_PRED, lstm=LSTMSettings(layers=[HIDDEN, HIDDEN], dropout=0.3))
    cfg = TrainSettings(batch_size=BATCH)
    state = create_train_state(spec, cfg.learning_rate, jax.random.PRNGKey(0))
    batch = {"x": x, "y": y, "w": np.ones(BATCH, np.float32)}
    rng = jax.random.PRNGKey(1)
    holder = [state]

    def step() -> None:
        holder[0], metrics = train_step(holder[0], batch, rng)
        jax.block_until_ready(metrics["loss"])

    def pred() -> None:
        model = TrainedModel(spec, holder[0].params, (), 0, 0.0, 0.0, 0.0, 0, cfg)
        predict(model, x_pred, batch_size=PRED_BATCH)

    return step, pred


def torch_side(x: np.ndarray, y: np.ndarray, x_pred: np.ndarray) -> tuple[Callable[[], None], Callable[[], None]]:
    torch.manual_seed(0)
    net = TorchLSTM()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    xt, yt, xp = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(x_pred)

    def step() -> None:
        net.train()
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(net(xt), yt)
        loss.backward()
        opt.step()

    def pred() -> None:
        net.eval()
        with torch.no_grad():
            for start in range(0, len(xp), PRED_BATCH):
                net(xp[start : start + PRED_BATCH])

    return step, pred


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=15, help="timed train steps per side")
    parser.add_argument("--preds", type=int, default=5, help="timed prediction passes per side")
    parser.add_argument("--one-core", action="store_true", help="both sides on one core, one thread")
    args = parser.parse_args()
    if args.one_core:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        torch.set_num_threads(1)

    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, L_S, N_FEATURES)).astype(np.float32)
    y = rng.standard_normal((BATCH, N_PRED)).astype(np.float32)
    x_pred = rng.standard_normal((PRED_WINDOWS, L_S, N_FEATURES)).astype(np.float32)
    sides = {"pdm-ray (Flax)": flax_side(x, y, x_pred), "PyTorch nn.LSTM": torch_side(x, y, x_pred)}

    load_before = os.getloadavg()[0]
    for step, pred in sides.values():  # warm-up: compilation, allocator, thread pools
        step()
        step()
        pred()
    steps: dict[str, list[float]] = {name: [] for name in sides}
    preds: dict[str, list[float]] = {name: [] for name in sides}
    for rep in range(max(args.steps, args.preds)):
        for name, (step, pred) in sides.items():
            if rep < args.steps:
                t0 = time.perf_counter()
                step()
                steps[name].append(time.perf_counter() - t0)
            if rep < args.preds:
                t0 = time.perf_counter()
                pred()
                preds[name].append(time.perf_counter() - t0)

    print(
        f"{platform.machine()}, {os.cpu_count()} CPUs; jax {jax.__version__}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads){'; one core' if args.one_core else ''}; "
        f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}"
    )
    print(f"{'':18s} {'train step (ms)':>22s} {'predict 8,000 windows (ms)':>30s}")
    for name in sides:
        s, p = steps[name], preds[name]
        print(
            f"{name:18s} median {statistics.median(s) * 1e3:7.1f} min {min(s) * 1e3:7.1f}"
            f"     median {statistics.median(p) * 1e3:8.0f} min {min(p) * 1e3:8.0f}"
        )
    ours, theirs = list(sides)
    step_ratio = statistics.median(steps[ours]) / statistics.median(steps[theirs])
    pred_ratio = statistics.median(preds[ours]) / statistics.median(preds[theirs])
    print(
        f"Flax / PyTorch (medians, below 1 = Flax faster): train step x{step_ratio:.2f}, prediction x{pred_ratio:.2f}"
    )


if __name__ == "__main__":
    main()
