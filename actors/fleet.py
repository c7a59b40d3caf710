"""``Fleet``: the named, detached supervisor of the sensor actors (``"fleet"`` in the namespace).

It creates or finds ``sensor:<id>`` actors on demand (``get_if_exists``), routes batches to
them, fans status queries out with one ``await`` over all of them, and lists the sensors it
supervises: the live ``sensor:*`` actors plus every state directory under
``<home>/sensors``. It keeps nothing it cannot rediscover, so a restarted Fleet (its own
``max_restarts``) carries on where it was. Sensor actors are detached and outlive it.

Retraining (``pdm_ray.retraining``): ``check_retraining`` gathers every sensor's status
and what the ``ModelHost`` knows of its model, evaluates the policy once per sensor against
one fleet-wide state (so ``retraining.max_concurrent`` caps the whole fleet), records every
decision in ``<home>/retraining.db`` and launches a ``retrain_sensor`` Ray task for each one
that fires. Finished retrains are settled on the next check (or by ``settle_retrains``):
their outcome goes to the history and the policy, and after a promotion the model host
drops the sensor's old model (with a ``ServeForecaster``, the model deployment forgets the
old version), the sensor asks for predictions again at once and takes its newest readings
as its drift reference. The policy state is a JSON file next to the
history; a retrain that was running when the Fleet died is recorded as failed. With
``actors.retrain_check_s`` > 0 the Fleet checks by itself that often. The retraining
modules (scipy) are imported on first use.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from typing import TYPE_CHECKING, Any

import ray
from ray.actor import ActorHandle
from ray.exceptions import RayError
from ray.util import list_named_actors

from actors.forecaster import Forecaster, ModelHostForecaster, ServeForecaster
from actors.sensor import (
    IngestAck,
    SensorActor,
    absolute_paths,
    actor_name,
    error_line,
    sensor_options,
)
from pdm_ray.config import Settings
from pdm_ray.errors import FleetUnavailableError, OutOfOrderBatchError, PdmError, UnknownSensorError
from pdm_ray.ids import validate_sensor_id
from pdm_ray.streaming import AnomalyEvent, Batch, SensorSeries, SensorStatus, list_sensor_dirs, sensor_dir

if TYPE_CHECKING:
    from actors.retrain import RetrainResult
    from pdm_ray.retraining import Decision, HistoryEntry, PolicyState, RetrainingHistory

logger = logging.getLogger(__name__)

FLEET_NAME = "fleet"
OUT_OF_ORDER_WAIT_S = 5.0
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
        self._policy: PolicyState | None = None  # loaded on first use
        self._history: RetrainingHistory | None = None
        self._retrains: dict[str, tuple[Any, int]] = {}  # sensor -> (task ref, history entry id)
        self._manual: dict[str, str] = {}
        self._loop_task: asyncio.Task[None] | None = None
        # One retraining round at a time: the periodic check and `pdm-ray fleet retrain` would
        # otherwise both evaluate the same policy across their awaits and fire twice.
        self._round = asyncio.Lock()

    def _sensor(self, sensor_id: str, create: bool = True) -> ActorHandle:
        self._start_checking()
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

    def _start_checking(self) -> None:
        """Run ``check_retraining`` every ``actors.retrain_check_s`` seconds (started by the first call).

        Called from the methods, never from ``__init__``: an actor's event loop runs its
        methods, so a restarted Fleet starts checking again with its first call.
        """
        period = self._settings.actors.retrain_check_s
        if period > 0 and (self._loop_task is None or self._loop_task.done()):
            self._loop_task = asyncio.get_running_loop().create_task(self._check_forever(period))

    async def _check_forever(self, period: float) -> None:
        while True:
            await asyncio.sleep(period)
            try:
                await self.check_retraining()
            except Exception:  # a failed round must not end the loop; the next one retries
                logger.exception("retraining check failed")

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

        Concurrent calls may reach the sensor out of order (this actor is asynchronous), so
        a batch refused as out of order is sent again, with backoff, for up to
        ``OUT_OF_ORDER_WAIT_S`` seconds while the batches before it arrive.

        Raises:
            InvalidChannelError: not a valid sensor id.
            OutOfOrderBatchError: the batches before it did not arrive in time.
            InvalidBatchError: the sensor rejected the batch.
        """
        handle = self._sensor(sensor_id)
        delay, waited = 0.005, 0.0
        while True:
            try:
                return await handle.ingest.remote(batch)
            except OutOfOrderBatchError:
                if waited >= OUT_OF_ORDER_WAIT_S:
                    raise
                await asyncio.sleep(delay)
                waited += delay
                delay = min(2 * delay, 0.5)

    async def status(self, sensor_id: str) -> SensorStatus:
        """One sensor's status.

        Raises:
            UnknownSensorError: no such sensor (no actor and no stored state).
        """
        return await self._sensor(sensor_id, create=False).status.remote()

    async def status_all(self, sensor_ids: list[str] | None = None) -> list[SensorStatus | tuple[str, str]]:
        """Statuses of ``sensor_ids`` (default: every sensor listed), gathered in one await.

        A sensor whose actor cannot answer (e.g. it failed to recover a damaged snapshot or
        WAL) comes back as ``(sensor_id, error)``, as ``pdm-ray fleet status`` lists unreadable
        stored state, so one broken sensor does not hide the others.
        """
        ids = sensor_ids if sensor_ids is not None else await self.list_sensors()

        async def one(sensor_id: str) -> SensorStatus | tuple[str, str]:
            try:
                return await self._sensor(sensor_id, create=False).status.remote()
            except (RayError, PdmError) as exc:
                error = error_line(exc)  # e.g. the sensor's error on recovery
                logger.warning("sensor %s: no status: %s", sensor_id, error)
                return sensor_id, error

        return list(await asyncio.gather(*(one(sid) for sid in ids)))

    async def recent(self, sensor_id: str, n: int = 10) -> list[AnomalyEvent]:
        """A sensor's newest ``n`` anomaly events."""
        return await self._sensor(sensor_id, create=False).recent.remote(n)

    async def series(self, sensor_id: str, n: int = 1000) -> SensorSeries:
        """A sensor's newest ``n`` readings with forecasts, smoothed errors, thresholds and events."""
        return await self._sensor(sensor_id, create=False).series.remote(n)

    async def reset_reference(self, sensor_id: str) -> int:
        """Make a sensor's newest readings its drift reference (e.g. after retraining)."""
        return await self._sensor(sensor_id, create=False).reset_reference.remote()

    async def list_sensors(self) -> list[str]:
        """Every supervised sensor: live ``sensor:*`` actors and stored states (sorted)."""
        self._start_checking()
        named = {n[len(_PREFIX) :] for n in list_named_actors() if n.startswith(_PREFIX)}
        return sorted(named | set(self._sensors) | set(list_sensor_dirs(self._settings.home)))

    # ------------------------------------------------------------------ retraining
    def _retraining(self) -> tuple[PolicyState, RetrainingHistory]:
        """The policy state and history, loaded on first use; retrains orphaned by a restart fail."""
        if self._policy is None or self._history is None:
            from pdm_ray.retraining import Outcome, RetrainingHistory, history_path, record_outcome
            from pdm_ray.streaming.retraining import POLICY_FILE, load_policy_state, save_policy_state

            history = RetrainingHistory(history_path(self._settings.home))
            policy = load_policy_state(self._settings.home / POLICY_FILE)
            now = time.time()
            for sensor in list(policy.in_flight):
                for entry in history.pending(sensor):
                    history.update_outcome(entry.id, Outcome.FAILED, now)
                policy = record_outcome(policy, sensor, Outcome.FAILED)
                logger.warning("sensor %s: its retrain was lost when the Fleet restarted; recorded as failed", sensor)
            save_policy_state(self._settings.home / POLICY_FILE, policy)
            self._policy, self._history = policy, history
        return self._policy, self._history

    async def request_retrain(self, sensor_id: str, reason: str = "manual request") -> None:
        """Ask for a retrain of ``sensor_id`` at the next check (the policy's ``manual`` trigger)."""
        validate_sensor_id(sensor_id)
        self._manual[sensor_id] = reason

    async def check_retraining(self) -> list[Decision]:
        """Settle finished retrains, evaluate the policy for every sensor, launch the ones that fire.

        Returns the decisions of this round (one per trigger whose condition held).
        """
        self._start_checking()
        async with self._round:
            await self._settle_finished()
            return await self._evaluate_round()

    async def _evaluate_round(self) -> list[Decision]:
        from actors.retrain import retrain_sensor
        from pdm_ray.retraining import Trigger, evaluate
        from pdm_ray.streaming.retraining import POLICY_FILE, observation, save_policy_state

        policy, history = self._retraining()
        statuses = await self.status_all()
        models = {m.sensor_id: m for m in await self._hosted_models()}
        now = time.time()
        decisions: list[Decision] = []
        for status in statuses:
            if isinstance(status, tuple):
                continue  # its actor does not answer: nothing to observe this round
            sid = status.sensor_id
            model = models.get(sid)
            manual = self._manual.pop(sid, None)
            obs = observation(
                status,
                None if model is None else model.validation_mse,
                None if model is None else model.trained_at,
                manual,
            )
            policy, found = evaluate(self._settings.retraining, policy, obs, now)
            for decision in found:
                entry = history.record(decision)
                if decision.fired:
                    data_dir = str(self._settings.data.dir)
                    self._retrains[sid] = (retrain_sensor.remote(sid, self._settings_data, data_dir), entry)
                    logger.info("sensor %s: retrain started (%s)", sid, decision.trigger.value)
                elif decision.trigger is Trigger.MANUAL and manual is not None:
                    self._manual.setdefault(sid, manual)  # suppressed by the cap: ask again next round
            decisions.extend(found)
        self._policy = policy
        save_policy_state(self._settings.home / POLICY_FILE, policy)
        return decisions

    async def settle_retrains(self, wait: bool = False) -> list[HistoryEntry]:
        """Record the outcome of every finished retrain (with ``wait``, of every one running at the call).

        A promotion makes the model host drop the sensor's old model and the sensor take its
        newest readings as the drift reference. Returns the updated history entries.
        """
        awaited = [entry for _, entry in self._retrains.values()] if wait else []
        if awaited:  # wait outside the lock, so checks go on meanwhile (and may settle these)
            await asyncio.gather(*(ref for ref, _ in self._retrains.values()), return_exceptions=True)
        async with self._round:
            updated = await self._settle_finished()
        settled_elsewhere = [i for i in awaited if i not in {e.id for e in updated}]
        return updated + [self._retraining()[1].get(i) for i in settled_elsewhere]

    async def _settle_finished(self) -> list[HistoryEntry]:
        from pdm_ray.retraining import Outcome, record_outcome
        from pdm_ray.streaming.retraining import POLICY_FILE, save_policy_state

        if not self._retrains:
            return []
        policy, history = self._retraining()
        sensors = list(self._retrains)
        refs = [self._retrains[s][0] for s in sensors]
        ready = set(ray.wait(refs, num_returns=len(refs), timeout=0)[0])
        finished = [(s, r) for s, r in zip(sensors, refs, strict=True) if r in ready]
        results = await asyncio.gather(*(r for _, r in finished), return_exceptions=True)
        now = time.time()
        updated, promoted = [], []
        for (sid, _), result in zip(finished, results, strict=True):
            _, entry_id = self._retrains.pop(sid)
            outcome, version = self._outcome(sid, result)
            updated.append(history.update_outcome(entry_id, outcome, now, version))
            policy = record_outcome(policy, sid, outcome)
            if outcome is Outcome.SUCCEEDED:
                promoted.append(sid)
        self._policy = policy
        save_policy_state(self._settings.home / POLICY_FILE, policy)
        for sid in promoted:  # after the policy is saved: a failure here must not leave the sensor in flight
            try:
                await self._adopt_new_model(sid)
            except (RayError, PdmError) as exc:
                logger.warning("sensor %s: the new model was promoted but not adopted: %s", sid, exc)
        return updated

    @staticmethod
    def _outcome(sensor_id: str, result: RetrainResult | BaseException) -> tuple[Any, str | None]:
        from pdm_ray.retraining import Outcome

        if isinstance(result, BaseException):
            logger.warning("sensor %s: retrain task failed: %s", sensor_id, result)
            return Outcome.FAILED, None
        logger.info(
            "sensor %s: retrain %s (version %s): %s", sensor_id, result.outcome, result.model_version, result.detail
        )
        return Outcome(result.outcome), result.model_version

    async def _adopt_new_model(self, sensor_id: str) -> None:
        if isinstance(self._forecaster, ModelHostForecaster):
            await self._forecaster.host.unload.remote(sensor_id)
        elif isinstance(self._forecaster, ServeForecaster):
            try:  # blocking (a handle lookup, then the call): off the event loop
                await asyncio.to_thread(self._forecaster.forget, sensor_id)
            except (RayError, PdmError) as exc:  # the deployment re-resolves within serve.version_ttl_s anyway
                logger.warning("sensor %s: the model deployment did not forget its old version: %s", sensor_id, exc)
        sensor = self._sensor(sensor_id, create=False)
        await sensor.model_changed.remote()
        try:
            await sensor.reset_reference.remote()
        except PdmError as exc:  # too few readings for a reference: keep the old one
            logger.warning("sensor %s: drift reference kept after the new model: %s", sensor_id, exc)

    async def _hosted_models(self) -> list[Any]:
        """What the model host has loaded (validation error, age); empty without one.

        Empty with a ``ServeForecaster`` too: the deployment reports no model details, so the
        degradation and schedule triggers have nothing to compare against.
        """
        if isinstance(self._forecaster, ModelHostForecaster):
            return list(await self._forecaster.host.models.remote())
        return []

    async def retraining_history(self, sensor_id: str | None = None, limit: int = 50) -> list[HistoryEntry]:
        """The newest retraining decisions and outcomes, newest first."""
        return self._retraining()[1].list(sensor_id, limit)

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
    data = absolute_paths(settings).model_dump(mode="json")
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
