"""Training the forecasters: a jitted ``train_step`` and the epoch loop with early stopping.

Follows Hundman et al. (2018, arXiv:1802.04431): MSE on the next ``n_predictions`` values of
channel 0, Adam, the last ``validation_split`` of the windows held out (time order) and early
stopping on the validation loss. Each epoch is also compared with the persistence forecast (the
last input value of channel 0 repeated), which any useful model has to beat. With
``train.refit`` the validation run only chooses each network's epoch count, and the network is
then trained again on every window (the reference code's networks train on windows from the
whole series, because it shuffles before holding out).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
import numpy.typing as npt
import optax
from flax import linen as nn
from flax import struct

from pdm_ray.config import TrainSettings
from pdm_ray.errors import DataError, InsufficientDataError
from pdm_ray.models.networks import LSTMForecaster, member_network
from pdm_ray.models.spec import ModelSpec

logger = logging.getLogger(__name__)

Batch = dict[str, jax.Array]
"""``x`` ``[B, l_s, F]``, ``y`` ``[B, P]`` and ``w`` ``[B]`` (1 for real windows, 0 for padding)."""

EVAL_BATCH = 1024


@dataclass(frozen=True)
class EpochMetrics:
    """What one epoch achieved.

    Attributes:
        epoch: 0-based epoch index.
        train_loss: mean training MSE over the epoch's batches (dropout on).
        val_loss: MSE on the held-out validation windows.
        naive_val_loss: MSE of the persistence forecast on the same validation windows.
        improved: the epoch beat the best validation loss so far by more than ``min_delta``.
    """

    epoch: int
    train_loss: float
    val_loss: float
    naive_val_loss: float
    improved: bool

    @property
    def val_ratio(self) -> float:
        """``val_loss / naive_val_loss``: below 1 means the model beats persistence."""
        return self.val_loss / self.naive_val_loss if self.naive_val_loss > 0 else math.inf


@dataclass(frozen=True)
class TrainedModel:
    """A trained forecaster: the network's spec, its best parameters and how training went.

    Attributes:
        spec: rebuilds the network.
        params: Flax params pytree of the best epoch.
        history: metrics of every epoch run.
        best_epoch: the epoch whose params these are.
        val_loss: validation MSE of the best epoch.
        naive_val_loss: persistence-forecast MSE on the same validation windows.
        train_seconds: wall-clock seconds spent in ``train``.
        seed: the seed of initialisation, dropout and shuffling.
        train_settings: the training settings used.
        normalizer: optional JSON-serializable normalizer the model's inputs went through.
    """

    spec: ModelSpec
    params: Any
    history: tuple[EpochMetrics, ...]
    best_epoch: int
    val_loss: float
    naive_val_loss: float
    train_seconds: float
    seed: int
    train_settings: TrainSettings
    normalizer: dict[str, Any] | None = None


def check_windows(spec: ModelSpec, x: npt.ArrayLike, what: str = "X") -> npt.NDArray[np.float32]:
    """``x`` as float32 ``[N, l_s, F]`` matching ``spec``, N >= 1, finite.

    Raises:
        DataError: wrong rank, window length or feature count, no windows, non-numeric or
            non-finite values. The message names the expected and the actual shape.
    """
    arr = np.asarray(x)
    expected = f"[N, l_s={spec.l_s}, n_features={spec.n_features}]"
    if arr.ndim != 3:
        raise DataError(f"{what} must have shape {expected}, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise DataError(f"{what} is empty: no windows (shape {arr.shape})")
    if arr.shape[1] != spec.l_s:
        raise DataError(f"{what} has window length {arr.shape[1]} but the model expects l_s={spec.l_s}")
    if arr.shape[2] != spec.n_features:
        raise DataError(f"{what} has {arr.shape[2]} features but the model expects n_features={spec.n_features}")
    if not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{what} must be numeric, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise DataError(f"{what} has non-finite values, first in window {int(np.argwhere(~np.isfinite(arr))[0][0])}")
    return arr


def _check_targets(spec: ModelSpec, y: npt.ArrayLike, n: int) -> npt.NDArray[np.float32]:
    arr = np.asarray(y)
    if arr.ndim != 2 or arr.shape != (n, spec.n_predictions):
        raise DataError(f"y must have shape [N={n}, n_predictions={spec.n_predictions}], got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"y must be numeric, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise DataError(f"y has non-finite values, first in row {int(np.argwhere(~np.isfinite(arr))[0][0])}")
    return arr


# Adam whose learning rate lives in the optimizer state rather than in the compiled code, so
# every run with the same network shape reuses one compiled ``train_step``: a sweep samples a new
# learning rate for nearly every trial, and compiling the LSTM step took 1.6-2.4 s each time.
_ADAM = optax.inject_hyperparams(optax.adam)


class TrainState(struct.PyTreeNode):
    """Parameters and Adam state (learning rate included) of one training run, passed through the jitted steps.

    ``net`` is static and compared by value, so every run with the same network shape reuses
    one compiled ``train_step``, whatever its learning rate.
    """

    step: jax.Array
    params: Any
    opt_state: optax.OptState
    net: nn.Module = struct.field(pytree_node=False)

    @property
    def learning_rate(self) -> float:
        return float(self.opt_state.hyperparams["learning_rate"])


#: XLA options for ``_init_params``. Init runs once per training, so only its compile time
#: counts, and that is mostly LLVM optimizing the unrolled random-number hash of every param's
#: key. At backend optimization level 1 the paper's LSTM init took 2.2 s against 4.8 s, the
#: Transformer's 3.2 s against 6.0 s (``benchmarks/compile_time.py``, one core), with
#: bit-identical params (``test_init_params_match_a_default_compile``).
INIT_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}


@partial(jax.jit, static_argnums=0, compiler_options=INIT_COMPILER_OPTIONS)
def _init_params(net: nn.Module, rng: jax.Array, dummy: jax.Array) -> Any:
    """The network's initial params, compiled once per network shape (eager init retraces every call)."""
    return net.init(rng, dummy, train=False)["params"]


def create_train_state(spec: ModelSpec, learning_rate: float, rng: jax.Array) -> TrainState:
    """Fresh params for one network of ``spec`` (initialised from ``rng``) with a fresh Adam state at ``learning_rate``.

    One network: a ``SeedEnsemble``'s members each get a state of their own (``train``).
    """
    net = member_network(spec)
    params = _init_params(net, rng, jnp.zeros((1, spec.l_s, spec.n_features), jnp.float32))
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=_ADAM(learning_rate=jnp.float32(learning_rate)).init(params),
        net=net,
    )


def _weighted_mse(pred: jax.Array, y: jax.Array, w: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Sum over windows of ``w * mean_p (pred - y)^2`` and the sum of ``w``."""
    per_window = jnp.mean(jnp.square(pred - y), axis=-1)
    return jnp.sum(w * per_window), jnp.sum(w)


def _train_step(state: TrainState, batch: Batch, rng: jax.Array) -> tuple[TrainState, dict[str, jax.Array]]:
    """``train_step``'s body, jitted below once per set of compiler options."""
    dropout_rng = jax.random.fold_in(rng, state.step)

    def loss_fn(params: Any) -> tuple[jax.Array, jax.Array]:
        pred = state.net.apply({"params": params}, batch["x"], train=True, rngs={"dropout": dropout_rng})
        total, weight = _weighted_mse(pred, batch["y"], batch["w"])
        return total / jnp.maximum(weight, 1.0), weight

    (loss, weight), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    # The update reads the learning rate from opt_state; the one given here is never used.
    updates, opt_state = _ADAM(learning_rate=0.0).update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
    return new_state, {"loss": loss, "weight": weight}


#: XLA options for the LSTM's train step, which every training process compiles for each network
#: shape it meets: at backend optimization level 1 the paper's LSTM step compiled in 4.1 s against
#: 4.6 s (medians, ``benchmarks/compile_time.py``), ran as fast, and trained bit-identical params
#: (``test_lstm_train_step_matches_a_default_compile``). The Transformer's step keeps XLA's
#: defaults: at level 1 its params differ after a few steps.
LSTM_STEP_COMPILER_OPTIONS = INIT_COMPILER_OPTIONS
_LSTM_TRAIN_STEP = jax.jit(_train_step, compiler_options=LSTM_STEP_COMPILER_OPTIONS)
_TRANSFORMER_TRAIN_STEP = jax.jit(_train_step)


def train_step(state: TrainState, batch: Batch, rng: jax.Array) -> tuple[TrainState, dict[str, jax.Array]]:
    """One jitted Adam step on the weighted MSE of ``batch``.

    The dropout key is ``fold_in(rng, state.step)``, so a run is a function of its seed.
    Returns the new state and ``{"loss": batch MSE, "weight": windows in the batch}``.
    """
    step = _LSTM_TRAIN_STEP if isinstance(state.net, LSTMForecaster) else _TRANSFORMER_TRAIN_STEP
    return step(state, batch, rng)


@jax.jit
def _forecast_step(state: TrainState, x: jax.Array) -> jax.Array:
    return state.net.apply({"params": state.params}, x, train=False)


def padded_batches(
    n: int, batch_size: int, order: npt.NDArray[np.int64] | None = None
) -> list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]]:
    """Index batches of one fixed size: ``(indices [batch_size], weights [batch_size])``.

    The last batch is padded with index 0 at weight 0, so jitted steps see one shape and
    compile once.
    """
    order = np.arange(n) if order is None else order
    out = []
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        w = np.ones(batch_size, np.float32)
        if len(idx) < batch_size:
            w[len(idx) :] = 0.0
            idx = np.concatenate([idx, np.zeros(batch_size - len(idx), idx.dtype)])
        out.append((idx, w))
    return out


def _forecast(state: TrainState, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """One network's forecasts ``[N, P]`` for windows ``x``, in padded batches of one size."""
    size = min(EVAL_BATCH, 1 << (len(x) - 1).bit_length())
    out = [_forecast_step(state, x[idx]) for idx, _ in padded_batches(len(x), size)]
    return np.concatenate([np.asarray(o) for o in out])[: len(x)]


def _mse(pred: npt.NDArray[np.float32], y: npt.NDArray[np.float32]) -> float:
    return float(np.mean(np.square(pred - y), dtype=np.float64))


class _Member:
    """One network in training: its state, randomness, best epoch so far and early-stopping count.

    Member 0 draws from ``seed`` exactly as a lone network does, so one member trains the same
    model as before members existed; member ``k`` draws from ``(seed, k)``.
    """

    def __init__(self, spec: ModelSpec, train_cfg: TrainSettings, k: int) -> None:
        key = jax.random.PRNGKey(train_cfg.seed)
        init_rng, self.dropout_rng = jax.random.split(key if k == 0 else jax.random.fold_in(key, k))
        self.state = create_train_state(spec, train_cfg.learning_rate, init_rng)
        self.shuffler = np.random.default_rng(train_cfg.seed if k == 0 else (train_cfg.seed, k))
        self.best_params: Any = None
        self.best_val = math.inf
        self.pred: npt.NDArray[np.float32] | None = None  # validation forecasts: this epoch's and the kept params'
        self.best_pred: npt.NDArray[np.float32] | None = None
        self.since_best = 0
        self.active = True
        self.epochs_run = 0
        self.best_epochs = 0  # epochs run when the kept params were reached

    def run_epoch(self, x_tr: npt.NDArray[np.float32], y_tr: npt.NDArray[np.float32], batch_size: int) -> float:
        """One pass over the shuffled training windows; returns the epoch's mean training MSE."""
        step_metrics = []
        for idx, w in padded_batches(len(x_tr), batch_size, self.shuffler.permutation(len(x_tr))):
            self.state, m = train_step(self.state, {"x": x_tr[idx], "y": y_tr[idx], "w": w}, self.dropout_rng)
            step_metrics.append(m)  # stays on device: no sync per step
        self.epochs_run += 1
        losses = np.array([(float(m["loss"]), float(m["weight"])) for m in jax.device_get(step_metrics)])
        return float(np.sum(losses[:, 0] * losses[:, 1]) / np.sum(losses[:, 1]))

    def validate(self, x_val: npt.NDArray[np.float32], y_val: npt.NDArray[np.float32], cfg: TrainSettings) -> bool:
        """Forecast the validation windows, keep the params if they beat the best by ``min_delta``, count patience."""
        self.pred = _forecast(self.state, x_val)
        val = _mse(self.pred, y_val)
        improved = self.best_params is None or val < self.best_val - cfg.min_delta
        if improved:
            self.best_params, self.best_val, self.best_pred, self.since_best = self.state.params, val, self.pred, 0
            self.best_epochs = self.epochs_run
        else:
            self.since_best += 1
            self.active = self.since_best < cfg.patience
        return improved


def _ensemble_params(members: list[_Member]) -> Any:
    """The kept params: one network's, or every member's stacked as a ``SeedEnsemble``'s."""
    if len(members) == 1:
        return members[0].best_params
    return {"network": jax.tree.map(lambda *p: jnp.stack(p), *(m.best_params for m in members))}


def _refit(
    spec: ModelSpec,
    train_cfg: TrainSettings,
    members: list[_Member],
    x: npt.NDArray[np.float32],
    y: npt.NDArray[np.float32],
    batch_size: int,
) -> Any:
    """Each member trained again from its initial params on windows ``x``, for its best epoch count."""
    refit = []
    for k, member in enumerate(members):
        fresh = _Member(spec, train_cfg, k)  # same seed: same initial params, dropout and shuffles
        for _ in range(member.best_epochs):
            fresh.run_epoch(x, y, batch_size)
        fresh.best_params = fresh.state.params
        refit.append(fresh)
    return _ensemble_params(refit)


def persistence_mse(x: npt.NDArray[np.float32], y: npt.NDArray[np.float32]) -> float:
    """MSE of repeating the last input value of channel 0 over the horizon: x ``[N, l_s, F]``, y ``[N, P]``."""
    return float(np.mean(np.square(y - x[:, -1:, 0]), dtype=np.float64))


def train(
    spec: ModelSpec,
    train_cfg: TrainSettings,
    X: npt.ArrayLike,
    y: npt.ArrayLike,
    on_epoch: Callable[[EpochMetrics, TrainedModel], None] | None = None,
) -> TrainedModel:
    """Train a forecaster on windows and keep the parameters of the best validation epoch.

    The last ``validation_split`` of the windows (in time order) is held out; the rest is
    shuffled into batches each epoch with a generator seeded by ``train_cfg.seed``. Training
    stops after ``epochs`` or when the validation loss has not improved by more than
    ``min_delta`` for ``patience`` epochs (Hundman et al. 2018). The split is the issue's
    and Telemanom's, with no gap: the first ``n_predictions - 1`` validation windows share
    target steps with the last training windows (9 windows, under 2% of a SMAP channel's
    validation windows), so the validation loss is that slightly optimistic, wherever it is
    read (early stopping, the ``val_loss`` of results and runs, the promotion gate).

    A spec with several ``members`` trains that many networks independently, as a deep
    ensemble's are (Lakshminarayanan et al. 2017): each has its own initial params, dropout
    masks, batch order and early stopping, and keeps its own best epoch. They run one after
    another within each epoch (on one CPU core that is faster than one vmapped step of all
    of them), and the model forecasts their mean (``SeedEnsemble``). An epoch's
    ``val_loss`` is that mean's, with stopped members at their kept params; ``improved``
    means some member improved; the result's ``val_loss`` is the kept members' mean's.

    With ``train_cfg.refit`` each member is then trained again from its initial params on
    all ``N`` windows (validation ones too) for as many epochs as its kept params had; the
    result holds those params, while ``history``, ``best_epoch`` and ``val_loss`` still
    describe the validation run that chose the epoch counts (the refit params have no
    held-out data left to be scored on). ``on_epoch`` sees only the validation run.

    Args:
        spec: the network.
        train_cfg: optimiser, batching, early stopping and seed.
        X: input windows ``[N, l_s, F]`` (see ``pdm_ray.data.windows.make_windows``).
        y: targets ``[N, n_predictions]``.
        on_epoch: called after every epoch with its metrics and the best model so far
            (shares the best params, no copy), e.g. to report to Ray Tune and checkpoint.

    Raises:
        DataError: ``X`` / ``y`` do not match ``spec`` or are not finite.
        InsufficientDataError: fewer than 2 windows, so no train/validation split.
    """
    started = time.perf_counter()
    x_all = check_windows(spec, X)
    y_all = _check_targets(spec, y, len(x_all))
    n = len(x_all)
    n_val = max(1, round(n * train_cfg.validation_split))
    n_train = n - n_val
    if n_train < 1:
        raise InsufficientDataError(
            f"{n} windows are too few to hold out validation_split={train_cfg.validation_split} and train"
        )
    x_tr, y_tr, x_val, y_val = x_all[:n_train], y_all[:n_train], x_all[n_train:], y_all[n_train:]
    naive = persistence_mse(x_val, y_val)

    n_members = spec.lstm.members if spec.kind == "lstm" else spec.transformer.members
    members = [_Member(spec, train_cfg, k) for k in range(n_members)]
    batch_size = min(train_cfg.batch_size, n_train)

    history: list[EpochMetrics] = []
    best: TrainedModel | None = None
    for epoch in range(train_cfg.epochs):
        active = [m for m in members if m.active]
        train_loss = float(np.mean([m.run_epoch(x_tr, y_tr, batch_size) for m in active]))
        improved = any([m.validate(x_val, y_val, train_cfg) for m in active])
        # This epoch's forecast: the mean of the training members' current and the stopped ones' kept forecasts.
        val_loss = _mse(np.mean([m.pred if m.active else m.best_pred for m in members], axis=0), y_val)
        metrics = EpochMetrics(epoch, train_loss, val_loss, naive, improved)
        history.append(metrics)
        best = TrainedModel(
            spec=spec,
            params=_ensemble_params(members) if improved else best.params,
            history=tuple(history),
            best_epoch=epoch if improved else best.best_epoch,
            val_loss=_mse(np.mean([m.best_pred for m in members], axis=0), y_val) if improved else best.val_loss,
            naive_val_loss=naive,
            train_seconds=time.perf_counter() - started,
            seed=train_cfg.seed,
            train_settings=train_cfg,
        )
        logger.info(
            "epoch %d: train %.5f val %.5f (persistence %.5f)%s",
            epoch,
            train_loss,
            val_loss,
            naive,
            " *" if improved else "",
        )
        if on_epoch is not None:
            on_epoch(metrics, best)
        if not any(m.active for m in members):
            logger.info("early stop after epoch %d: no member improved for %d epoch(s)", epoch, train_cfg.patience)
            break
    best = cast(TrainedModel, best)  # TrainSettings guarantees epochs >= 1
    if not train_cfg.refit:
        return best
    params = _refit(spec, train_cfg, members, x_all, y_all, batch_size)
    logger.info("refit on all %d windows for %s epoch(s)", n, [m.best_epochs for m in members])
    return replace(best, params=params, train_seconds=time.perf_counter() - started)
