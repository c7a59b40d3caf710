"""Window features: stable names, hand-computed values, a per-window reference, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pdm_ray.config import FeatureSettings
from pdm_ray.data.features import compute_features, feature_names
from pdm_ray.errors import DataError, InsufficientDataError

TINY = FeatureSettings(window=4, widths=[2], quantiles=[0.5], lags=[1], ewma_spans=[2], acf_lags=[1], fft_bands=2)

DEFAULT_NAMES = (
    ["value"]
    + [
        f"{stat}_{label}"
        for label in ("w10", "w30", "full")
        for stat in ("mean", "std", "min", "max", "q10", "q50", "q90")
    ]
    + ["lag_1", "lag_5", "lag_10", "diff_1", "diff_5", "diff_10", "roc_1", "roc_5", "roc_10", "ewma_5", "ewma_20"]
    + ["zscore", "fft_band_0", "fft_band_1", "fft_band_2", "fft_band_3", "fft_dominant_freq", "spectral_entropy"]
    + ["acf_1", "acf_2", "acf_5", "acf_10", "peaks", "zero_crossings", "skew", "kurtosis", "trend_slope"]
    + ["cmd_active", "cmd_distinct", "cmd_changes"]
)


def test_default_names_are_stable_and_at_least_forty() -> None:
    names = feature_names(FeatureSettings())
    assert names == DEFAULT_NAMES
    assert len(names) == 52 >= 40
    frame = compute_features(np.sin(np.arange(300) / 7.0), FeatureSettings())
    assert list(frame.columns) == DEFAULT_NAMES
    assert frame.shape == (201, 52)
    assert (frame.dtypes == np.float32).all()
    assert frame.index.name == "t" and frame.index[0] == 99 and frame.index[-1] == 299


def test_hand_computed_ramp_window() -> None:
    row = compute_features(np.array([1.0, 2.0, 3.0, 4.0]), TINY).iloc[0]
    assert row["value"] == 4.0
    assert row["mean_full"] == pytest.approx(2.5) and row["mean_w2"] == pytest.approx(3.5)
    assert row["std_full"] == pytest.approx(np.sqrt(1.25))
    assert row["q50_full"] == pytest.approx(2.5) and row["min_w2"] == 3.0 and row["max_full"] == 4.0
    assert row["lag_1"] == 3.0 and row["diff_1"] == 1.0 and row["roc_1"] == 1.0
    assert row["trend_slope"] == pytest.approx(1.0)
    assert row["zscore"] == pytest.approx(1.5 / np.sqrt(1.25))
    # deviations -1.5 -0.5 0.5 1.5: lag-1 products 0.75 - 0.25 + 0.75 = 1.25 over 5
    assert row["acf_1"] == pytest.approx(0.25)
    # span 2: alpha = 2/3, weights (1/3)^3, (1/3)^2, 1/3, 1 on 1, 2, 3, 4
    weights = np.array([1 / 27, 1 / 9, 1 / 3, 1.0])
    assert row["ewma_2"] == pytest.approx(weights @ [1, 2, 3, 4] / weights.sum())
    assert row["skew"] == pytest.approx(0.0, abs=1e-7) and row["kurtosis"] == pytest.approx(-1.36)
    assert row["peaks"] == 0 and row["zero_crossings"] == 1


def test_cosine_has_its_frequency_peaks_and_a_pure_spectrum() -> None:
    x = np.cos(2 * np.pi * np.arange(32) / 8)
    settings = FeatureSettings(window=32, widths=[8], lags=[1], acf_lags=[8], fft_bands=4)
    row = compute_features(x, settings).iloc[0]
    assert row["fft_dominant_freq"] == pytest.approx(1 / 8)
    assert row["fft_band_0"] == pytest.approx(1.0)  # bins 1..4 of 16; the tone is bin 4
    assert row["fft_band_1"] == pytest.approx(0.0, abs=1e-6)
    assert row["spectral_entropy"] == pytest.approx(0.0, abs=1e-5)
    assert row["peaks"] == 3  # t = 8, 16, 24 (t = 0 has no left neighbour)
    assert row["acf_8"] == pytest.approx(24 / 32, abs=1e-6)  # 24 overlapping products of a full period


def test_zero_crossings_count_sign_changes_around_the_mean() -> None:
    x = np.array([1.0, -1.0, -1.0, 1.0, 1.0, -1.0])
    row = compute_features(x, FeatureSettings(window=6, widths=[2], lags=[1], acf_lags=[1], fft_bands=2)).iloc[0]
    assert row["zero_crossings"] == 3
    assert row["peaks"] == 0  # the plateau at 1, 1 is not a strict maximum


def test_command_activity_counts() -> None:
    t = 8
    flags = np.zeros((t, 3))
    flags[1, 0] = 1.0
    flags[2, 0] = 1.0
    flags[5, 2] = 1.0
    x = np.column_stack([np.arange(t, dtype=float), flags])
    frame = compute_features(x, TINY)  # windows [0..3], [1..4], ..., [4..7]
    assert frame["cmd_active"].tolist() == [2, 2, 2, 1, 1]
    assert frame["cmd_distinct"].tolist() == [1, 1, 2, 1, 1]
    # the flag vector changes at steps 1 (on), 3 (off), 5 (on), 6 (off); a window counts changes inside it
    assert frame["cmd_changes"].tolist() == [2, 1, 2, 2, 2]


def test_single_column_series_has_zero_command_counts() -> None:
    frame = compute_features(np.arange(10.0), TINY)
    assert (frame[["cmd_active", "cmd_distinct", "cmd_changes"]] == 0).all().all()


def test_constant_windows_give_zeros_never_nan() -> None:
    frame = compute_features(np.full(50, 3.0), FeatureSettings(window=20, widths=[5], lags=[1], acf_lags=[1, 2]))
    assert not frame.isna().any().any()
    for name in ("zscore", "acf_1", "skew", "kurtosis", "spectral_entropy", "fft_band_0", "fft_dominant_freq"):
        assert (frame[name] == 0).all(), name
    assert (frame["mean_full"] == 3.0).all()
    np.testing.assert_allclose(frame["ewma_5"], 3.0, rtol=1e-6)


def _reference_row(window: np.ndarray, settings: FeatureSettings) -> dict[str, float]:
    """One window's features by plain per-window code (scipy, pandas, polyfit)."""
    w = window.size
    out: dict[str, float] = {"value": window[-1]}
    for k, label in zip([*settings.widths, w], [f"w{k}" for k in settings.widths] + ["full"], strict=True):
        sub = window[-k:]
        out[f"std_{label}"] = np.std(sub)
        out[f"q90_{label}"] = np.quantile(sub, 0.9)
    for span in settings.ewma_spans:
        out[f"ewma_{span}"] = pd.Series(window).ewm(span=span, adjust=True).mean().iloc[-1]
    out["skew"] = stats.skew(window)
    out["kurtosis"] = stats.kurtosis(window)
    out["trend_slope"] = np.polyfit(np.arange(w), window, 1)[0]
    for k in settings.acf_lags:
        d = window - window.mean()
        out[f"acf_{k}"] = np.dot(d[:-k], d[k:]) / np.dot(d, d)
    power = np.abs(np.fft.rfft(window - window.mean()))[1:] ** 2
    p = power / power.sum()
    out["spectral_entropy"] = -np.sum(p[p > 0] * np.log(p[p > 0])) / np.log(p.size)
    out["fft_dominant_freq"] = (np.argmax(power) + 1) / w
    return out


def test_vectorized_features_match_per_window_reference() -> None:
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.standard_normal(90))
    settings = FeatureSettings(window=24, step=3, widths=[6, 12], lags=[1, 4], acf_lags=[1, 3], ewma_spans=[3, 9])
    frame = compute_features(x, settings)
    assert len(frame) == (90 - 24) // 3 + 1
    for t, row in frame.iterrows():
        ref = _reference_row(x[t - 23 : t + 1], settings)
        for name, expected in ref.items():
            assert row[name] == pytest.approx(expected, rel=1e-4, abs=1e-5), (t, name)


@pytest.mark.parametrize(
    ("series", "kwargs", "error", "match"),
    [
        (np.array([1.0, np.nan, 2.0, 3.0, 4.0]), {}, DataError, "non-finite"),
        (np.array([1.0, np.inf, 2.0, 3.0, 4.0]), {}, DataError, "non-finite"),
        (np.arange(3.0), {}, InsufficientDataError, "shorter than one feature window"),
        (np.zeros((2, 2, 2)), {}, DataError, "shape"),
        (np.arange(100.0), {"window": 3}, DataError, "at least 4"),
        (np.arange(100.0), {"window": 5}, DataError, r"\[10, 30\] do not fit"),
    ],
)
def test_bad_input_raises(series: np.ndarray, kwargs: dict, error: type, match: str) -> None:
    settings = TINY if series.size < 10 else FeatureSettings(lags=[1], acf_lags=[1], fft_bands=2)
    with pytest.raises(error, match=match):
        compute_features(series, settings, **kwargs)
