"""Samples prepared once so six drift tests share one sort and one merge.

A ``Reference`` holds the sorted reference values, the interior edges of its quantile bins
and its bin counts. ``pair`` merges a sorted current sample into it with one stable argsort
(two sorted runs: a linear merge) and derives, per distinct value of the union, both
empirical CDFs and the tie structure. KS and Wasserstein read the CDFs, Mann–Whitney the
average ranks and tie sizes, and the bin tests the two count vectors.

Bins: ``n_bins`` reference quantiles give at most ``n_bins - 1`` interior edges; repeated
quantiles (ties) are merged. Value ``x`` falls in bin ``searchsorted(edges, x, side="right")``,
i.e. bins are ``[edge[j - 1], edge[j])``. When the top edge is the reference maximum (ties at
the top, e.g. a constant or saturated sensor), one more edge just above it
(``nextafter(max)``) keeps values above the reference apart from the atom at its maximum, so a
constant reference ``c`` has the bins ``(-inf, c)``, ``[c, c]`` and ``(c, inf)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pdm_ray.errors import DataError, InsufficientDataError


def as_sample(values: npt.ArrayLike, name: str, min_samples: int) -> npt.NDArray[np.float32]:
    """Validate ``values`` as a finite 1-D float32 sample of at least ``min_samples`` values.

    Raises:
        DataError: not 1-D, not numeric, or with a non-finite value (the first index is named).
        InsufficientDataError: fewer than ``min_samples`` values.
    """
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise DataError(f"{name} must be a 1-D sample, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{name} must be numeric, got dtype {arr.dtype}")
    if arr.size < min_samples:
        raise InsufficientDataError(f"{name} has {arr.size} values; drift tests need at least {min_samples}")
    with np.errstate(over="ignore"):  # values beyond float32 become inf and are reported below
        arr = arr.astype(np.float32, copy=False)
    finite = np.isfinite(arr)
    if not finite.all():
        first = int(np.argmin(finite))
        raise DataError(f"{name} has a non-finite value at index {first} ({arr[first]!r} as float32)")
    return arr


def bin_index(edges: npt.NDArray[np.float32], values: npt.NDArray[np.float32]) -> npt.NDArray[np.intp]:
    """Bin of each value, ``[n] -> [n]`` in ``0..len(edges)`` (see the module docstring)."""
    return np.searchsorted(edges, values, side="right")


def counts_of_sorted(edges: npt.NDArray[np.float32], sorted_values: npt.NDArray[np.float32]) -> npt.NDArray[np.int64]:
    """Bin counts ``[len(edges) + 1]`` of an already sorted sample, in ``O(len(edges) log n)``."""
    below = np.searchsorted(sorted_values, edges, side="left")
    return np.diff(below, prepend=0, append=sorted_values.size).astype(np.int64)


@dataclass(frozen=True, eq=False)
class Reference:
    """A reference sample prepared for repeated drift checks.

    Attributes:
        values: ``[n]`` float32, sorted.
        edges: ``[k]`` float32 strictly increasing interior bin edges, ``k <= n_bins``.
        counts: ``[k + 1]`` int64 reference count per bin.
        std: population standard deviation (float64), the Wasserstein scale.
    """

    values: npt.NDArray[np.float32]
    edges: npt.NDArray[np.float32]
    counts: npt.NDArray[np.int64]
    std: float

    @classmethod
    def from_values(cls, values: npt.ArrayLike, n_bins: int, min_samples: int) -> Reference:
        """Sort, bin and summarise a reference sample ``[n]``.

        Raises:
            DataError: not a finite 1-D numeric sample.
            InsufficientDataError: fewer than ``min_samples`` values.
        """
        if n_bins < 2:
            raise DataError(f"n_bins must be at least 2, got {n_bins}")
        sample = np.sort(as_sample(values, "reference", min_samples))
        quantiles = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
        edges = np.unique(np.quantile(sample, quantiles).astype(np.float32))
        if edges[-1] == sample[-1]:
            edges = np.append(edges, np.nextafter(sample[-1], np.float32(np.inf)))
        return cls(
            values=sample,
            edges=edges,
            counts=counts_of_sorted(edges, sample),
            std=float(np.std(sample, dtype=np.float64)),
        )


@dataclass(frozen=True, eq=False)
class SamplePair:
    """A reference and a current sample merged, with everything the tests read.

    ``g`` is the number of distinct values in the union of both samples.

    Attributes:
        n_reference: reference size ``n``.
        n_current: current size ``m``.
        values: ``[g]`` float64 distinct values of the union, increasing.
        cdf_reference: ``[g]`` float64 empirical CDF of the reference at each value.
        cdf_current: ``[g]`` float64 empirical CDF of the current sample at each value.
        reference_ranks_sum: sum of the reference's mid-ranks in the union (1-based).
        tie_sizes: ``[g]`` int64 multiplicity of each value in the union.
        reference_counts: ``[b]`` int64 reference counts on the reference bins.
        current_counts: ``[b]`` int64 current counts on the same bins.
        reference_std: the reference's standard deviation.
    """

    n_reference: int
    n_current: int
    values: npt.NDArray[np.float64]
    cdf_reference: npt.NDArray[np.float64]
    cdf_current: npt.NDArray[np.float64]
    reference_ranks_sum: float
    tie_sizes: npt.NDArray[np.int64]
    reference_counts: npt.NDArray[np.int64]
    current_counts: npt.NDArray[np.int64]
    reference_std: float


def pair(
    reference: Reference,
    current_sorted: npt.NDArray[np.float32],
    current_counts: npt.NDArray[np.int64] | None = None,
) -> SamplePair:
    """Merge a sorted current sample ``[m]`` into ``reference``.

    Args:
        reference: the prepared reference.
        current_sorted: ``[m]`` float32 current values, sorted, finite.
        current_counts: ``[k + 1]`` its counts on ``reference.edges`` when the caller keeps
            them incrementally (``DriftMonitor``); computed from ``current_sorted`` if None.
    """
    n, m = reference.values.size, current_sorted.size
    union = np.concatenate([reference.values, current_sorted])
    order = np.argsort(union, kind="stable")
    merged = union[order]
    from_current = np.cumsum(order >= n)
    last = np.flatnonzero(merged[1:] != merged[:-1])
    last = np.append(last, merged.size - 1)
    current_le = from_current[last]
    reference_le = last + 1 - current_le
    tie_sizes = np.diff(last, prepend=-1)
    reference_in_group = np.diff(reference_le, prepend=0)
    mid_rank = last + 1 - (tie_sizes - 1) / 2.0
    if current_counts is None:
        current_counts = counts_of_sorted(reference.edges, current_sorted)
    return SamplePair(
        n_reference=n,
        n_current=m,
        values=merged[last].astype(np.float64),
        cdf_reference=reference_le / n,
        cdf_current=current_le / m,
        reference_ranks_sum=float(np.sum(reference_in_group * mid_rank)),  # no BLAS threads (np.dot)
        tie_sizes=tie_sizes.astype(np.int64),
        reference_counts=reference.counts,
        current_counts=current_counts,
        reference_std=reference.std,
    )
