"""Forecast KPIs: MAE, RMSE, MAPE and R² of predictions against true values."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pdm_ray.errors import DataError


@dataclass(frozen=True)
class ForecastKPIs:
    """Forecast accuracy over ``n`` points.

    Attributes:
        mae: mean absolute error.
        rmse: root mean squared error.
        mape: mean absolute percentage error in percent, over the ``n_mape`` points with
            ``|y_true| >= eps`` only (a relative error near a zero target is meaningless);
            NaN when no point qualifies.
        r2: coefficient of determination ``1 - SS_res / SS_tot``; for constant targets
            (``SS_tot == 0``) 1.0 if the predictions are exact, else 0.0.
        n: points compared.
        n_mape: points that entered the MAPE.
    """

    mae: float
    rmse: float
    mape: float
    r2: float
    n: int
    n_mape: int


def forecast_kpis(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, eps: float = 1e-8) -> ForecastKPIs:
    """KPIs of predictions ``y_pred`` against ``y_true`` (same shape, flattened), in float64.

    Raises:
        DataError: shapes differ, the arrays are empty or hold non-finite values.
    """
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if t.shape != p.shape:
        raise DataError(f"y_true and y_pred differ in shape: {t.shape} != {p.shape}")
    if t.size == 0:
        raise DataError("y_true is empty: no forecast to score")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(p))):
        raise DataError("y_true and y_pred must be finite")
    t, p = t.ravel(), p.ravel()
    residual = p - t
    ss_res = float(np.sum(residual**2))
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else float(ss_res == 0)
    usable = np.abs(t) >= eps
    n_mape = int(usable.sum())
    mape = float(np.mean(np.abs(residual[usable] / t[usable])) * 100.0) if n_mape else float("nan")
    return ForecastKPIs(
        mae=float(np.mean(np.abs(residual))),
        rmse=float(np.sqrt(ss_res / t.size)),
        mape=mape,
        r2=r2,
        n=int(t.size),
        n_mape=n_mape,
    )
