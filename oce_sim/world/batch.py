"""The batch's calendar: N territories of one configuration advanced by one SimPy environment.

A ``WorldBatch`` holds the territories (``World`` objects, which hold state and no process) and runs **one** SimPy
process per activity of the day for all of them: reviews and the portal at 00:00, the pipeline's batches at 02:00,
the field day at 08:00, marketing at 10:00-11:00, webinars at 18:00 and the day's touches at 23:00.  Each process
wakes once per event for the whole batch and hands the phase to the territories together
(``Territories`` below: a phase is one call over all of them), so a day costs the same number of SimPy events for
one territory as for a thousand.  The territories never interact: territory ``i`` of a batch is the territory a
batch of one seeded alike would be, bit for bit (``tests/test_batch.py``).

A batch pickles by dropping its SimPy environment and generators: every process records where it waits (``Wake``)
each time it yields, and ``resume`` rebuilds the processes at the current time, in the order their events were
scheduled (SimPy runs events of the same time in that order), in the same phase.

May import: numpy, simpy and ``oce_sim.world.calendar``; the territories are reached only through the
``Territories`` protocol (``oce_sim.world.simulation`` builds batches, never the other way round).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np
import simpy

from oce_sim.world.calendar import HOUR, is_working_day

Process = Generator[simpy.Event, Any, None]


class Wake(NamedTuple):
    """Where a SimPy process waits: the time it resumes at, the order its event was scheduled in (SimPy runs
    events of the same time in that order) and what it does when it wakes (``phase``, about ``day``)."""

    time: float
    order: int
    phase: str
    day: float


class Territories(Protocol):
    """What the calendar asks of the territories of a batch: each phase of the day, for all of them at once."""

    def calendar_settings(self) -> CalendarSettings: ...

    def portal_visits(self, day: int) -> None: ...

    def end_of_day(self, day: int) -> None: ...

    def publish(self, now: float) -> None: ...

    def field_day(self, day: int) -> None: ...

    def marketing_emails(self, day: float) -> None: ...

    def marketing_remote(self, day: float) -> None: ...

    def next_webinar_day(self, now: float) -> float: ...

    def invite_to_webinar(self, event_day: float) -> None: ...

    def hold_webinar(self, event_day: float) -> None: ...

    def review_access(self, now: float) -> None: ...


class CalendarSettings(NamedTuple):
    """The few configuration values that shape the calendar (one configuration per batch)."""

    pipeline_batch_interval_days: float
    field_works: bool  # a field force with capacity (reps who can make at least one call a day)
    working_minutes_per_day: float
    email_interval_days: float
    remote_interval_days: float
    access_review_interval_days: float
    access_reviews: bool
    calendar_marketing: bool  # marketing runs its own calendar (below marketing stage 3 control by the orchestrator)


class WorldBatch:
    """The SimPy calendar of a batch of territories (see the module docstring)."""

    def __init__(self, territories: Territories, now: float = 0.0,
                 wakes: dict[str, tuple[float, int, str, float]] | None = None):
        """``territories``: the batch's phases; ``now`` and ``wakes``: resume a pickled batch where its processes
        waited (None: a fresh batch at time 0)."""
        self.territories = territories
        self.settings = territories.calendar_settings()
        self.env = simpy.Environment(initial_time=now)
        # process -> Wake fields (a plain tuple: cheap).  A resumed batch keeps where its processes wait until they
        # next run (a copy of a copy that never ran resumes where the first one would have)
        self._wakes: dict[str, tuple[float, int, str, float]] = dict(wakes or {})
        self._wake_order = max((wake[1] for wake in self._wakes.values()), default=0)
        self._start_processes(wakes)

    @property
    def now(self) -> float:
        return float(self.env.now)

    def run_until(self, day: float) -> None:
        if day > self.env.now:
            self.env.run(until=day)

    def wakes(self) -> dict[str, tuple[float, int, str, float]]:
        """Where each process waits now (what a pickle keeps to resume them)."""
        return dict(self._wakes)

    # ----------------------------------------------------------------------------------------- processes
    def _processes(self) -> dict[str, Callable[[Wake | None], Process]]:
        processes = {
            "day_cycle": self._day_cycle,
            "pipeline": self._pipeline_batches,
            "field": self._field_days,
            "webinars": self._webinars,
        }
        if self.settings.access_reviews:
            processes["access"] = self._access_reviews
        if self.settings.calendar_marketing:
            processes["emails"] = self._marketing_emails
            processes["remote"] = self._marketing_remote
        return processes

    def _start_processes(self, wakes: dict[str, tuple[float, int, str, float]] | None) -> None:
        """Start every process; with ``wakes``, each where it last waited, in the order its event was scheduled,
        so that events of the same time run in the same order as they would have."""
        processes = self._processes()
        if not wakes:  # a fresh batch, or one copied before its processes first ran
            for process in processes.values():
                self.env.process(process(None))
            return
        assert wakes.keys() == processes.keys(), "every process waits somewhere once the batch has run"
        for name, wake in sorted(wakes.items(), key=lambda item: item[1][1]):
            self.env.process(processes[name](Wake(*wake)))

    def _wait(self, name: str, delay: float, phase: str = "", day: float = 0.0) -> simpy.Timeout:
        """``env.timeout(delay)`` for process ``name``, recording where it waits and what it does next."""
        self._wake_order += 1
        self._wakes[name] = (self.env.now + delay, self._wake_order, phase, day)  # the time as SimPy computes it
        return self.env.timeout(delay)

    def _resume(self, name: str, wake: Wake) -> simpy.Timeout:
        """Wait, in a rebuilt environment, until exactly ``wake.time`` (a delay with ``now + delay == time``)."""
        now, delay = self.env.now, wake.time - self.env.now
        while now + delay < wake.time:
            delay = math.nextafter(delay, math.inf)
        while now + delay > wake.time:
            delay = math.nextafter(delay, -math.inf)
        return self._wait(name, delay, wake.phase, wake.day)

    def _day_cycle(self, resume: Wake | None = None) -> Process:
        if resume is not None:
            yield self._resume("day_cycle", resume)
            if resume.phase == "end_of_day":
                day = int(resume.day)
                self.territories.end_of_day(day)
                yield self._wait("day_cycle", day + 1 - self.env.now)
        while True:
            day = int(round(self.env.now))
            self.territories.portal_visits(day)
            yield self._wait("day_cycle", day + 23 * HOUR - self.env.now, "end_of_day", day)
            self.territories.end_of_day(day)
            yield self._wait("day_cycle", day + 1 - self.env.now)

    def _field_days(self, resume: Wake | None = None) -> Process:
        if resume is not None:
            yield self._resume("field", resume)
            if resume.phase == "after_work":
                yield self._wait("field", resume.day + 1 + 8 * HOUR - self.env.now)
        while True:
            day = int(np.floor(self.env.now))
            start = day + 8 * HOUR
            if start > self.env.now:
                yield self._wait("field", start - self.env.now)
            if is_working_day(day) and self.settings.field_works:
                self.territories.field_day(day)
                # The reps are busy until the end of their working day.
                yield self._wait("field", self.settings.working_minutes_per_day / 1440.0, "after_work", day)
            yield self._wait("field", day + 1 + 8 * HOUR - self.env.now)

    def _pipeline_batches(self, resume: Wake | None = None) -> Process:
        yield self._resume("pipeline", resume) if resume is not None else self._wait("pipeline", 2 * HOUR)
        while True:
            self.territories.publish(self.env.now)
            yield self._wait("pipeline", self.settings.pipeline_batch_interval_days)

    def _marketing_emails(self, resume: Wake | None = None) -> Process:
        yield self._resume("emails", resume) if resume is not None else self._wait("emails", 2 + 10 * HOUR)
        while True:
            day = self.env.now
            if is_working_day(int(day)):
                self.territories.marketing_emails(day)
            yield self._wait("emails", self.settings.email_interval_days)

    def _marketing_remote(self, resume: Wake | None = None) -> Process:
        yield self._resume("remote", resume) if resume is not None else self._wait("remote", 4 + 11 * HOUR)
        while True:
            self.territories.marketing_remote(self.env.now)
            yield self._wait("remote", self.settings.remote_interval_days)

    def _webinars(self, resume: Wake | None = None) -> Process:
        # phases: "next" (pick the next event and wait for its invitations), "invite", "hold" (the event)
        phase, event_day = ("next", 0.0) if resume is None else (resume.phase, resume.day)
        if resume is not None:
            yield self._resume("webinars", resume)
        while True:
            if phase == "next":
                event_day = self.territories.next_webinar_day(self.env.now)
                invite_time = max(self.env.now, event_day - 7)
                if invite_time > self.env.now:
                    yield self._wait("webinars", invite_time - self.env.now, "invite", event_day)
            if phase in ("next", "invite"):
                self.territories.invite_to_webinar(event_day)
                yield self._wait("webinars", event_day + 18 * HOUR - self.env.now, "hold", event_day)
            self.territories.hold_webinar(event_day)
            yield self._wait("webinars", 1.0, "next")
            phase = "next"

    def _access_reviews(self, resume: Wake | None = None) -> Process:
        interval = self.settings.access_review_interval_days
        yield self._resume("access", resume) if resume is not None else self._wait("access", interval)
        while True:
            self.territories.review_access(self.env.now)
            yield self._wait("access", interval)


def play_in_lockstep(envs: Sequence[Any], act: Callable[[int, Any, Any], Any], observations: list[Any],
                     after_step: Callable[[int, bool], None] | None = None) -> list[dict[str, Any]]:
    """Play environments whose territories form one batch (``TerritoryEnv``s: ``begin_steps``, ``finish_step``) to
    their episode's end together: at each decision ``act(i, observation, action_mask)`` gives env ``i``'s action
    (every env's action before any env's plays are applied), every env begins its step (one plan for all), the
    batch runs them all to the next decision, every env finishes its step (each exactly as it would alone), then
    ``after_step(steps, done)`` (steps played so far; what a caller does to each territory between two steps, as
    it would between two steps of one env).  One horizon: they end together.  Returns each env's last info."""
    infos: list[dict[str, Any]] = [{} for _ in envs]
    done, steps = False, 0
    while not done:
        actions = [act(i, observations[i], env.action_masks()) for i, env in enumerate(envs)]
        started = type(envs[0]).begin_steps(envs, actions)  # the batch plans all territories' plays at once
        envs[0].world.batch.run_until(envs[0]._day)
        for i, env in enumerate(envs):
            observations[i], _, terminated, truncated, infos[i] = env.finish_step(*started[i])
            done = terminated or truncated
        steps += 1
        if after_step is not None:
            after_step(steps, done)
    return infos


# Customers in one batch of paired seeds: at the default 600 a territory, 16 seeds; a national-scale world (100k
# customers) runs alone, as its arrays are then large enough that a batch saves nothing and doubles the memory.
MAX_BATCH_CUSTOMERS = 16 * 600


def seed_batches(seeds: Sequence[int], n_hcps: int) -> list[list[int]]:
    """``seeds`` in batches of at most ``MAX_BATCH_CUSTOMERS`` customers (at least one seed each)."""
    size = max(1, MAX_BATCH_CUSTOMERS // max(1, n_hcps))
    return [list(seeds[i:i + size]) for i in range(0, len(seeds), size)]


def same_calendar(settings: Sequence[CalendarSettings]) -> bool:
    """Whether territories can share one calendar (one configuration's processes at one set of times)."""
    return all(s == settings[0] for s in settings[1:])
