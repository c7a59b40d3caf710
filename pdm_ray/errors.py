"""The exception tree of pdm-ray.

Library code raises these; only ``pdm_ray.cli`` maps them to exit codes and only
``serve_apps`` maps them to HTTP status codes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pdm_ray.data.quality import QualityReport


class PdmError(Exception):
    """Root of every error pdm-ray raises on purpose."""


class ConfigError(PdmError):
    """A configuration file or value is missing or invalid."""


class DataError(PdmError):
    """Input data is missing, malformed or unusable."""


class InsufficientDataError(DataError):
    """There is too little data for the requested operation (e.g. shorter than a window)."""


class InvalidChannelError(DataError):
    """A channel or sensor id does not match the allowed pattern."""


class ModelNotTrainedError(PdmError):
    """A model was asked to predict before it was trained or loaded."""


class UnknownSensorError(PdmError):
    """No sensor, channel or registered model exists under the given id."""


class TrackingError(PdmError):
    """The MLflow tracking server or registry is unreachable or refused a request."""


class RegistryError(TrackingError):
    """A model-registry lifecycle step is impossible (no staging version, nothing to roll back to)."""


class InvalidBatchError(DataError):
    """A streamed batch of readings is malformed (non-finite values, wrong width, timestamps not increasing)."""


class WalCorruptionError(DataError):
    """A sensor's write-ahead log is damaged beyond a torn last record (which recovery truncates)."""


class WalWriteError(PdmError):
    """A batch could not be logged durably (disk full, I/O error), so it was not accepted; resend it."""


class DataQualityError(DataError):
    """A quality report is critical, so the data must not be trained on.

    Attributes:
        report: the quality report that failed the gate.
    """

    def __init__(self, message: str, report: QualityReport) -> None:
        super().__init__(message)
        self.report = report


class RetrainingError(PdmError):
    """A retraining-policy transition or history update is invalid (no retrain in flight, unknown record)."""


class SweepError(PdmError):
    """A hyper-parameter sweep produced no usable trial (every trial of every channel failed)."""


class FleetUnavailableError(PdmError):
    """No Fleet actor is running where one was expected (e.g. ``pdm-ray fleet status`` without a cluster)."""


class OutOfOrderBatchError(InvalidBatchError):
    """A batch skips ahead of the sensor's next sequence number; resend it after the missing ones."""


class JobStepError(PdmError):
    """A step of the main job failed; the message names the step and the cause."""
