"""Training: one jitted step, the epoch loop, early stopping, determinism and bad input."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdm_ray.config import TrainSettings
from pdm_ray.errors import DataError, InsufficientDataError
from pdm_ray.models import EpochMetrics, ModelSpec, TrainedModel, predict, train, train_step
from pdm_ray.models.networks import member_network
from pdm_ray.models.training import (
    _LSTM_TRAIN_STEP,
    TrainState,
    _Member,
    _train_step,
    _weighted_mse,
    create_train_state,
    padded_batches,
    persistence_mse,
)

Windows = tuple[np.ndarray, np.ndarray]


def _sse(state: TrainState, batch: dict[str, np.ndarray]) -> float:
    pred = state.net.apply({"params": state.params}, batch["x"], train=False)
    return float(jnp.sum(jnp.square(pred - batch["y"])))


def test_one_train_step(windows: Windows, small_spec: Callable[[str], ModelSpec]) -> None:
    """Flax-examples style: one step on one batch moves the params and lowers that batch's loss."""
    x, y = windows
    state = create_train_state(small_spec("lstm"), 1e-2, jax.random.PRNGKey(0))
    batch = {"x": x[:32], "y": y[:32], "w": np.ones(32, np.float32)}
    new_state, metrics = train_step(state, batch, jax.random.PRNGKey(1))
    assert int(new_state.step) == 1
    assert float(metrics["weight"]) == 32.0 and np.isfinite(float(metrics["loss"]))
    assert _sse(new_state, batch) < _sse(state, batch)
    moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), state.params, new_state.params)
    assert all(jax.tree.leaves(moved))


def test_learning_rate_is_applied_without_recompiling(windows: Windows, small_spec: Callable[[str], ModelSpec]) -> None:
    """The learning rate lives in the optimizer state: a sweep's new rate reuses the compiled step.

    Adam's first update is about ``lr`` per parameter, so 10x the rate moves the params
    about 10x as far.
    """
    x, y = windows
    batch = {"x": x[:32], "y": y[:32], "w": np.ones(32, np.float32)}
    moves = {}
    for lr in (1e-2, 1e-3, 1e-4):
        state = create_train_state(small_spec("lstm"), lr, jax.random.PRNGKey(0))
        assert state.learning_rate == pytest.approx(lr)
        new_state, _ = train_step(state, batch, jax.random.PRNGKey(1))
        if lr == 1e-2:
            compiled = _LSTM_TRAIN_STEP._cache_size()
        step = jax.tree.map(lambda a, b: jnp.max(jnp.abs(a - b)), state.params, new_state.params)
        moves[lr] = max(float(v) for v in jax.tree.leaves(step))
    assert _LSTM_TRAIN_STEP._cache_size() == compiled
    assert moves[1e-2] == pytest.approx(1e-2, rel=0.1)
    assert moves[1e-3] == pytest.approx(1e-3, rel=0.1)
    assert moves[1e-4] == pytest.approx(1e-4, rel=0.1)


@pytest.mark.parametrize("kind", ["lstm", "transformer"])
def test_init_params_match_a_default_compile(kind: str, small_spec: Callable[[str], ModelSpec]) -> None:
    """Init compiles with fewer LLVM passes (``INIT_COMPILER_OPTIONS``) yet gives the same bits."""
    spec = small_spec(kind)
    net = member_network(spec)
    dummy = jnp.zeros((1, spec.l_s, spec.n_features), jnp.float32)
    rng = jax.random.PRNGKey(3)
    fast = create_train_state(spec, 1e-3, rng).params
    default = jax.jit(lambda r, d: net.init(r, d, train=False)["params"])(rng, dummy)
    assert jax.tree.structure(fast) == jax.tree.structure(default)
    for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(default), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_lstm_train_step_matches_a_default_compile(windows: Windows, small_spec: Callable[[str], ModelSpec]) -> None:
    """The LSTM step compiles with fewer LLVM passes (``LSTM_STEP_COMPILER_OPTIONS``) yet trains the same bits."""
    x, y = windows
    batch = {"x": x[:32], "y": y[:32], "w": np.ones(32, np.float32)}
    default_step = jax.jit(_train_step)
    fast = default = create_train_state(small_spec("lstm"), 1e-2, jax.random.PRNGKey(0))
    for _ in range(3):
        fast, fast_metrics = train_step(fast, batch, jax.random.PRNGKey(1))
        default, default_metrics = default_step(default, batch, jax.random.PRNGKey(1))
    assert float(fast_metrics["loss"]) == float(default_metrics["loss"])
    for a, b in zip(jax.tree.leaves(fast.params), jax.tree.leaves(default.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_padding_weights_do_not_change_the_loss(windows: Windows, small_spec: Callable[[str], ModelSpec]) -> None:
    x, y = windows
    state = create_train_state(small_spec("lstm"), 1e-2, jax.random.PRNGKey(0))
    idx, w = padded_batches(20, 32)[0]
    real = _weighted_mse(state.net.apply({"params": state.params}, x[:20], train=False), y[:20], np.ones(20))
    padded = _weighted_mse(state.net.apply({"params": state.params}, x[idx], train=False), y[idx], w)
    assert float(padded[1]) == 20.0
    np.testing.assert_allclose(float(padded[0]), float(real[0]), rtol=1e-5)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 100), batch=st.integers(1, 40), seed=st.integers(0, 3))
def test_padded_batches_cover_every_index_once(n: int, batch: int, seed: int) -> None:
    order = np.random.default_rng(seed).permutation(n)
    batches = padded_batches(n, batch, order)
    assert len(batches) == -(-n // batch)
    assert all(len(idx) == batch and len(w) == batch for idx, w in batches)
    real = np.concatenate([idx[w == 1.0] for idx, w in batches])
    np.testing.assert_array_equal(real, order)
    assert sum(float(w.sum()) for _, w in batches) == n


def test_persistence_mse_hand_computed() -> None:
    x = np.zeros((2, 3, 2), np.float32)
    x[0, -1, 0], x[1, -1, 0] = 1.0, 2.0
    x[:, -1, 1] = 100.0  # other features are ignored
    y = np.array([[1.0, 3.0], [0.0, 2.0]], np.float32)
    # errors: [0, 2] and [-2, 0] -> mean of squares = 8 / 4
    assert persistence_mse(x, y) == pytest.approx(2.0)


@pytest.mark.parametrize("kind", ["lstm", "transformer"])
def test_loss_decreases_on_sine(
    kind: str,
    windows: Windows,
    small_spec: Callable[[str], ModelSpec],
    fast_settings: Callable[..., TrainSettings],
    trained_lstm: TrainedModel,
) -> None:
    x, y = windows
    model = trained_lstm if kind == "lstm" else train(small_spec(kind), fast_settings(), x, y)
    first, last = model.history[0], model.history[-1]
    assert len(model.history) == 3
    assert last.train_loss < first.train_loss
    assert model.val_loss < first.val_loss
    # val_loss is the kept model's own validation MSE (for the Transformer, its 3 members' mean).
    assert model.val_loss == pytest.approx(float(np.mean(np.square(predict(model, x[-56:]) - y[-56:]))), rel=1e-5)
    if kind == "lstm":  # one network: the kept epoch is the best one seen
        assert model.val_loss == min(m.val_loss for m in model.history)
        assert model.history[model.best_epoch].val_loss == model.val_loss
    assert model.naive_val_loss == pytest.approx(persistence_mse(x[-56:], y[-56:]))


def test_members_train_apart_and_the_first_is_the_lone_network(
    windows: Windows, small_spec: Callable[[str], ModelSpec], fast_settings: Callable[..., TrainSettings]
) -> None:
    """Each member has its own init, dropout, batch order and early stop; member 0 is what one network would be."""
    x, y = windows
    spec = small_spec("transformer")
    alone = train(replace(spec, transformer=spec.transformer.model_copy(update={"members": 1})), fast_settings(), x, y)
    pair = train(replace(spec, transformer=spec.transformer.model_copy(update={"members": 2})), fast_settings(), x, y)
    first = jax.tree.map(lambda a: a[0], pair.params["network"])
    second = jax.tree.map(lambda a: a[1], pair.params["network"])
    jax.tree.map(np.testing.assert_array_equal, first, alone.params)
    assert not np.allclose(second["embed"]["kernel"], first["embed"]["kernel"])
    forecasts = [predict(replace(alone, params=p), x[-56:]) for p in (first, second)]
    np.testing.assert_allclose(predict(pair, x[-56:]), np.mean(forecasts, axis=0), atol=1e-6)


def test_same_seed_same_model(
    windows: Windows,
    small_spec: Callable[[str], ModelSpec],
    fast_settings: Callable[..., TrainSettings],
    trained_lstm: TrainedModel,
) -> None:
    x, y = windows
    again = train(small_spec("lstm"), fast_settings(), x, y)
    assert [m.val_loss for m in again.history] == [m.val_loss for m in trained_lstm.history]
    jax.tree.map(np.testing.assert_array_equal, again.params, trained_lstm.params)
    other = train(small_spec("lstm"), fast_settings(seed=1, epochs=1), x, y)
    assert other.history[0].val_loss != trained_lstm.history[0].val_loss


def _trained_on_all(spec: ModelSpec, cfg: TrainSettings, x: np.ndarray, y: np.ndarray, k: int, epochs: int) -> object:
    member = _Member(spec, cfg, k)
    for _ in range(epochs):
        member.run_epoch(x, y, cfg.batch_size)
    return member.state.params


def test_refit_retrains_on_every_window_for_the_chosen_epochs(
    windows: Windows,
    small_spec: Callable[[str], ModelSpec],
    fast_settings: Callable[..., TrainSettings],
    trained_lstm: TrainedModel,
) -> None:
    """The validation run picks the epoch count; the kept params are a fresh run on all windows for that many."""
    x, y = windows
    cfg = fast_settings(refit=True)
    refit = train(small_spec("lstm"), cfg, x, y)
    assert refit.history == trained_lstm.history
    assert (refit.best_epoch, refit.val_loss) == (trained_lstm.best_epoch, trained_lstm.val_loss)
    expected = _trained_on_all(small_spec("lstm"), cfg, x, y, 0, trained_lstm.best_epoch + 1)
    jax.tree.map(np.testing.assert_array_equal, refit.params, expected)
    assert not np.allclose(predict(refit, x[-56:]), predict(trained_lstm, x[-56:]))


def test_refit_gives_each_member_its_own_epoch_count(
    windows: Windows, small_spec: Callable[[str], ModelSpec], fast_settings: Callable[..., TrainSettings]
) -> None:
    x, y = windows
    spec = small_spec("transformer")
    spec = replace(spec, transformer=spec.transformer.model_copy(update={"members": 2}))
    # min_delta so large that each member keeps its first epoch: one epoch each on all windows.
    cfg = fast_settings(epochs=3, patience=1, min_delta=1e6, refit=True)
    refit = train(spec, cfg, x, y)
    for k in range(2):
        member = jax.tree.map(lambda a, k=k: a[k], refit.params["network"])
        jax.tree.map(np.testing.assert_array_equal, member, _trained_on_all(spec, cfg, x, y, k, 1))


@pytest.mark.parametrize("kind", ["lstm", "transformer"])  # one network; 3 members that stop apart
def test_early_stopping_stops_and_keeps_the_best(
    kind: str, windows: Windows, small_spec: Callable[[str], ModelSpec], fast_settings: Callable[..., TrainSettings]
) -> None:
    x, y = windows
    seen: list[tuple[EpochMetrics, TrainedModel]] = []
    # min_delta so large that no epoch after the first counts as an improvement.
    model = train(
        small_spec(kind),
        fast_settings(epochs=10, patience=2, min_delta=1e6),
        x,
        y,
        on_epoch=lambda m, best: seen.append((m, best)),
    )
    assert [m.epoch for m in model.history] == [0, 1, 2]
    assert [m.improved for m in model.history] == [True, False, False]
    assert model.best_epoch == 0 and model.val_loss == model.history[0].val_loss
    assert [m for m, _ in seen] == list(model.history)
    assert all(best.best_epoch == 0 and best.params is seen[0][1].params for _, best in seen)
    assert [len(best.history) for _, best in seen] == [1, 2, 3]


def test_val_ratio() -> None:
    assert EpochMetrics(0, 1.0, 0.5, 2.0, True).val_ratio == 0.25
    assert EpochMetrics(0, 1.0, 0.5, 0.0, True).val_ratio == float("inf")


@pytest.mark.parametrize(
    ("x_shape", "y_shape", "match"),
    [
        ((10, 20, 3), (10, 3), "has 3 features but the model expects n_features=2"),
        ((10, 19, 2), (10, 3), "window length 19 but the model expects l_s=20"),
        ((0, 20, 2), (0, 3), "X is empty"),
        ((10, 20), (10, 3), r"X must have shape \[N, l_s=20, n_features=2\]"),
        ((10, 20, 2), (10, 4), r"y must have shape \[N=10, n_predictions=3\], got shape \(10, 4\)"),
        ((10, 20, 2), (9, 3), r"y must have shape \[N=10"),
    ],
)
def test_bad_input_names_the_problem(
    x_shape: tuple[int, ...],
    y_shape: tuple[int, ...],
    match: str,
    small_spec: Callable[[str], ModelSpec],
    fast_settings: Callable[..., TrainSettings],
) -> None:
    with pytest.raises(DataError, match=match):
        train(small_spec("lstm"), fast_settings(), np.zeros(x_shape), np.zeros(y_shape))


def test_non_finite_and_too_few_windows(
    small_spec: Callable[[str], ModelSpec], fast_settings: Callable[..., TrainSettings]
) -> None:
    x = np.zeros((10, 20, 2))
    x[4, 3, 1] = np.nan
    with pytest.raises(DataError, match="non-finite values, first in window 4"):
        train(small_spec("lstm"), fast_settings(), x, np.zeros((10, 3)))
    y = np.zeros((10, 3))
    y[7, 0] = np.inf
    with pytest.raises(DataError, match="y has non-finite values, first in row 7"):
        train(small_spec("lstm"), fast_settings(), np.zeros((10, 20, 2)), y)
    with pytest.raises(InsufficientDataError, match="1 windows are too few"):
        train(small_spec("lstm"), fast_settings(), np.zeros((1, 20, 2)), np.zeros((1, 3)))
