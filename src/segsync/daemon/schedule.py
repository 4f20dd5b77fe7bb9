"""APScheduler jobs of one source, derived from its `schedule:` options and the rules' time zone.

Jobs are named ``<source>:<job>`` so a reload can replace exactly the jobs of one source. Every job
has ``max_instances=1`` and ``coalesce`` (a daemon that slept through several runs runs once), and
the worker's own lock keeps the jobs of one source from overlapping each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from segsync.daemon.worker import SourceWorker

#: Credentials that die unused (amoCRM refresh tokens: 3 months) get a daily ``keep_alive()``; the
#: connector decides whether to renew (amoCRM renews a pair older than 6 days, i.e. about weekly).
KEEP_ALIVE_CRON = "17 4 * * *"
JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 600}


@dataclass(frozen=True)
class JobSpec:
    job: str
    trigger: BaseTrigger
    first_run: datetime | None = None  # None: when the trigger says


def job_specs(worker: SourceWorker, timezone: str, *, start_at: datetime | None = None) -> list[JobSpec]:
    """The jobs one source needs; ``start_at`` runs the first pull then (daemon start, not a reload)."""
    schedule = worker.source.schedule
    specs = [
        JobSpec("pull", IntervalTrigger(seconds=schedule.pull.total_seconds(), timezone=timezone), start_at),
        JobSpec("reconcile", CronTrigger.from_crontab(schedule.reconcile, timezone=timezone)),
    ]
    if worker.publish:
        specs.append(JobSpec("publish", CronTrigger.from_crontab(schedule.compute, timezone=timezone)))
    if worker.offers_keep_alive():
        specs.append(JobSpec("keep_alive", CronTrigger.from_crontab(KEEP_ALIVE_CRON, timezone=timezone)))
    return specs


def job_id(source: str, job: str) -> str:
    return f"{source}:{job}"


def unschedule(scheduler: AsyncIOScheduler, source: str) -> None:
    for job in scheduler.get_jobs():
        if job.id.startswith(f"{source}:"):
            job.remove()


def schedule_key(worker: SourceWorker, timezone: str) -> tuple[object, ...]:
    """What the jobs of a source depend on: equal keys mean a reload leaves its timers alone."""
    s = worker.source.schedule
    return (s.pull, s.reconcile, s.compute, timezone, bool(worker.publish), worker.offers_keep_alive())


def schedule_source(
    scheduler: AsyncIOScheduler, worker: SourceWorker, timezone: str, *, start_at: datetime | None = None
) -> list[str]:
    """(Re)create the jobs of ``worker``'s source; return their ids.

    Unchanged schedules are kept as they are: re-creating an interval job restarts its timer, and a
    rules file rewritten more often than the pull interval would then postpone pulls forever.
    """
    key = schedule_key(worker, timezone)
    current = [job.id for job in scheduler.get_jobs() if job.id.startswith(f"{worker.name}:")]
    if current and worker.schedule_key == key and start_at is None:
        return current
    worker.schedule_key = key
    unschedule(scheduler, worker.name)
    ids = []
    for spec in job_specs(worker, timezone, start_at=start_at):
        kwargs = {"next_run_time": spec.first_run} if spec.first_run is not None else {}
        job = scheduler.add_job(
            worker.run_job,
            spec.trigger,
            args=[spec.job],
            id=job_id(worker.name, spec.job),
            name=job_id(worker.name, spec.job),
            replace_existing=True,
            **kwargs,
        )
        ids.append(job.id)
    return ids


def stagger(index: int, now: datetime, step: timedelta = timedelta(seconds=2)) -> datetime:
    """First-pull times spread out so that a hundred sources do not all start in the same second."""
    return now + step * index
