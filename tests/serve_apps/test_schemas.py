"""Request schemas refuse what JSON should not carry: NaN/Infinity tokens, strings, booleans, float32 overflow."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from serve_apps.schemas import FLOAT32_MAX, BulkDetectRequest, DetectRequest, ForecastRequest, ReadingsRequest


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ('{"values": [1.0, NaN]}', ("values", 1)),
        ('{"values": [Infinity]}', ("values", 0)),
        ('{"values": [-Infinity, 2]}', ("values", 0)),
        ('{"values": [1, "2"]}', ("values", 1)),
        ('{"values": [true]}', ("values", 0)),
        ('{"values": [null]}', ("values", 0)),
        ('{"values": [1e39]}', ("values", 0)),  # finite in float64, inf in float32
        ('{"values": []}', ("values",)),
        ('{"values": [1], "extra": 1}', ("extra",)),
        ('{"values": [1], "commands": [[1, NaN]]}', ("commands", 0, 1)),
    ],
)
def test_detect_request_rejects(body: str, loc: tuple[object, ...]) -> None:
    # Python's json accepts NaN/Infinity tokens, so validate what it produces too.
    for attempt in (
        lambda: DetectRequest.model_validate_json(body),
        lambda: DetectRequest.model_validate(json.loads(body)),
    ):
        with pytest.raises(ValidationError) as info:
            attempt()
        assert info.value.errors()[0]["loc"] == loc


def test_detect_request_accepts_ints_and_floats() -> None:
    req = DetectRequest.model_validate_json('{"values": [1, 2.5, -3e5], "commands": [[0, 1], [1, 0], [0, 0]]}')
    assert req.values == [1.0, 2.5, -3e5]
    assert req.commands == [[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]]


def test_forecast_horizon_is_a_strict_positive_int() -> None:
    base = {"values": [1.0, 2.0], "timestamps": [0, 60]}
    assert ForecastRequest.model_validate({**base, "horizon": 3}).horizon == 3
    for bad in (0, -1, 2.5, "3", True):
        with pytest.raises(ValidationError):
            ForecastRequest.model_validate({**base, "horizon": bad})


def test_timestamps_are_numbers_or_strings() -> None:
    ok = ForecastRequest.model_validate({"values": [1.0, 2.0], "timestamps": ["2024-01-01T00:00:00Z", 1.7e9]})
    assert ok.timestamps == ["2024-01-01T00:00:00Z", 1.7e9]
    for bad in ([True, 1.0], [None, 1.0], [float("nan"), 1.0], [1e12, 2e12], [1.0]):
        with pytest.raises(ValidationError):
            ForecastRequest.model_validate({"values": [1.0, 2.0], "timestamps": bad})


def test_readings_need_seq_and_timestamps() -> None:
    with pytest.raises(ValidationError):
        ReadingsRequest.model_validate({"values": [1.0]})
    with pytest.raises(ValidationError):
        ReadingsRequest.model_validate({"values": [1.0], "timestamps": [0], "seq": -1})
    assert ReadingsRequest.model_validate({"values": [1.0], "timestamps": [0], "seq": 0}).seq == 0


def test_bulk_windows_carry_valid_sensor_ids() -> None:
    good = {"windows": [{"sensor_id": "A-1", "values": [1.0]}]}
    assert BulkDetectRequest.model_validate(good).windows[0].sensor_id == "A-1"
    for bad in ("", "-A", "a/b", "x" * 65, "é"):
        with pytest.raises(ValidationError):
            BulkDetectRequest.model_validate({"windows": [{"sensor_id": bad, "values": [1.0]}]})


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=1, max_size=20))
def test_values_are_accepted_exactly_when_finite_in_float32(values: list[float]) -> None:
    body = json.dumps({"values": values})  # writes NaN/Infinity tokens for non-finite floats
    expected = all(math.isfinite(v) and abs(v) <= FLOAT32_MAX for v in values)
    try:
        req = DetectRequest.model_validate(json.loads(body))
    except ValidationError:
        assert not expected
        return
    assert expected
    assert req.values == values
