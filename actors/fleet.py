"""``Fleet``: the named, detached supervisor of the sensor actors (``"fleet"`` in the namespace).

It creates or finds ``sensor:<id>`` actors on demand (``get_if_exists``), routes batches to
them, fans status queries out with one ``await`` over all of them, and lists the sensors it
supervises: the live ``sensor:*`` actors plus every state directory under
``<home>/sensors``. It keeps nothing it cannot rediscover, so a restarted Fleet (its own
``max_restarts``) carries on where it was. Sensor actors are detached and outlive it.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from typing import Any

import ray
from ray.actor import ActorHandle
from ray.util import list_named_actors

from actors.forecaster import Forecaster
from actors.sensor import (
    IngestAck,
    SensorActor,
    absolute_home,
    actor_name,
    sensor_options,
)
from pdm_ray.config import Settings
from pdm_ray.errors import FleetUnavailableError, UnknownSensorError
from pdm_ray.ids import validate_sensor_id
from pdm_ray.streaming import AnomalyEvent, Batch, SensorStatus, list_sensor_dirs, sensor_dir

logger = logging.getLogger(__name__)

FLEET_NAME = "fleet"
_PREFIX = actor_name("")


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class Fleet:
    """Supervisor of the sensor actors.

    Args:
        settings: ``Settings.model_dump(mode="json")`` with an absolute ``home``.
        forecaster: handed to every sensor actor it creates (None: no scoring).
    """

    def __init__(self, settings: dict[str, Any], forecaster: Forecaster | None = None) -> None:
        self._settings_data = settings
        self._settings = Settings.model_validate(settings)
        self._forecaster = forecaster
        self._sensors: dict[str, ActorHandle] = {}

    def _sensor(self, sensor_id: str, create: bool = True) -> ActorHandle:
        handle = self._sensors.get(sensor_id)
        if handle is not None:
            return handle
        validate_sensor_id(sensor_id)
        if create:
            options = sensor_options(self._settings, sensor_id)
            handle = SensorActor.options(**options).remote(sensor_id, self._settings_data, self._forecaster)
        else:
            try:
                handle = ray.get_actor(actor_name(sensor_id), namespace=self._settings.ray.namespace)
            except ValueError:
                if not sensor_dir(self._settings.home, sensor_id).is_dir():
                    raise UnknownSensorError(
                        f"no sensor {sensor_id!r}: no actor and no state in {self._settings.home}"
                    ) from None
                return self._sensor(sensor_id, create=True)  # stored state, no actor: bring it back
        self._sensors[sensor_id] = handle
        return handle

    async def sensor(self, sensor_id: str) -> ActorHandle:
        """The actor of ``sensor_id``, created (and recovered from disk) if needed.

        Raises:
            InvalidChannelError: not a valid sensor id.
        """
        return self._sensor(sensor_id)

    async def sensors(self, sensor_ids: list[str]) -> dict[str, ActorHandle]:
        """Actors of several sensors at once (created if needed), for producers that call them directly."""
        return {sid: self._sensor(sid) for sid in sensor_ids}

    async def ingest(self, sensor_id: str, batch: Batch | dict[str, Any]) -> IngestAck:
        """Route a batch to its sensor (created on first use).

        Raises:
            InvalidChannelError: not a valid sensor id.
            InvalidBatchError: the sensor rejected the batch.
        """
        return await self._sensor(sensor_id).ingest.remote(batch)

    async def status(self, sensor_id: str) -> SensorStatus:
        """One sensor's status.

        Raises:
            UnknownSensorError: no such sensor (no actor and no stored state).
        """
        return await self._sensor(sensor_id, create=False).status.remote()

    async def status_all(self, sensor_ids: list[str] | None = None) -> list[SensorStatus]:
        """Statuses of ``sensor_ids`` (default: every sensor listed), gathered in one await."""
        ids = sensor_ids if sensor_ids is not None else await self.list_sensors()
        handles = [self._sensor(sid, create=False) for sid in ids]
        return list(await asyncio.gather(*(h.status.remote() for h in handles)))

    async def recent(self, sensor_id: str, n: int = 10) -> list[AnomalyEvent]:
        """A sensor's newest ``n`` anomaly events."""
        return await self._sensor(sensor_id, create=False).recent.remote(n)

    async def reset_reference(self, sensor_id: str) -> int:
        """Make a sensor's newest readings its drift reference (e.g. after retraining)."""
        return await self._sensor(sensor_id, create=False).reset_reference.remote()

    async def list_sensors(self) -> list[str]:
        """Every supervised sensor: live ``sensor:*`` actors and stored states (sorted)."""
        named = {n[len(_PREFIX) :] for n in list_named_actors() if n.startswith(_PREFIX)}
        return sorted(named | set(self._sensors) | set(list_sensor_dirs(self._settings.home)))

    async def remove(self, sensor_id: str, delete_state: bool = False) -> bool:
        """Stop a sensor's actor for good; with ``delete_state`` also delete its WAL and snapshot.

        Returns whether an actor was running.
        """
        validate_sensor_id(sensor_id)
        self._sensors.pop(sensor_id, None)
        try:
            handle = ray.get_actor(actor_name(sensor_id), namespace=self._settings.ray.namespace)
            ray.kill(handle, no_restart=True)
            running = True
        except ValueError:
            running = False
        if delete_state:
            shutil.rmtree(sensor_dir(self._settings.home, sensor_id), ignore_errors=True)
        logger.info("sensor %s: removed (state %s)", sensor_id, "deleted" if delete_state else "kept")
        return running


def fleet_handle(settings: Settings, forecaster: Forecaster | None = None, name: str = FLEET_NAME) -> ActorHandle:
    """The running Fleet actor ``name`` in the settings' namespace, started (detached) if there is none.

    Call after ``ray.init``. ``home`` is made absolute first, so every actor agrees on it;
    an existing Fleet keeps the settings and forecaster it was started with.
    """
    data = absolute_home(settings).model_dump(mode="json")
    return Fleet.options(name=name, namespace=settings.ray.namespace, lifetime="detached", get_if_exists=True).remote(
        data, forecaster
    )


def find_fleet(settings: Settings, name: str = FLEET_NAME) -> ActorHandle:
    """The running Fleet actor ``name``.

    Raises:
        FleetUnavailableError: there is no such actor in the namespace.
    """
    try:
        return ray.get_actor(name, namespace=settings.ray.namespace)
    except ValueError:
        raise FleetUnavailableError(
            f"no Fleet actor {name!r} is running in namespace {settings.ray.namespace!r}"
        ) from None
