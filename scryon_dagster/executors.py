"""Where a batch run's step executes: in the run worker (the default), or on a Celery worker of any
host (``SCRYON_BATCH_EXECUTOR=celery``, docs/deployment.md "Several hosts").

The run worker started by the run launcher stays on the daemon's machine and only orchestrates; the
step — every call of the batch, ffmpeg and the provider requests — runs in a Celery worker
(``celery -A scryon_dagster.celery_worker worker``), which loads this code location from its installed
package and reaches the call database, object storage (S3) and Dagster's storage over the network.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from scryon_dagster.settings import BatchExecutor, Settings

CELERY_BROKER_ENV = "SCRYON_CELERY_BROKER_URL"
CELERY_CONFIG_SOURCE: dict[str, Any] = {
    # A step is acknowledged when it ends, not when a worker takes it: when a worker host dies
    # mid-batch the broker hands its step to another worker, which finds the calls still held by the
    # run and leaves them alone; the run then ends and crash recovery re-queues those calls
    # (run_crashed). Acknowledged on receipt, the step would be lost and the run would wait for it
    # until max_runtime_seconds.
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    # one batch per worker process at a time: a batch is minutes of work, never prefetched by a busy host
    "worker_prefetch_multiplier": 1,
    # a host that vanishes without closing its connection is noticed within ~2 heartbeats
    "broker_heartbeat": 10,
    "broker_connection_retry_on_startup": True,
}


def batch_executor(settings: Settings) -> dg.ExecutorDefinition:
    """The executor of the batch jobs, chosen by ``SCRYON_BATCH_EXECUTOR``."""
    if settings.scryon_batch_executor is BatchExecutor.CELERY:
        from dagster_celery import celery_executor

        return celery_executor.configured(
            # the broker URL is read from the environment in each process, never stored with the job
            {"broker": {"env": CELERY_BROKER_ENV}, "config_source": CELERY_CONFIG_SOURCE},
            name="celery_executor",
        )
    return dg.in_process_executor
