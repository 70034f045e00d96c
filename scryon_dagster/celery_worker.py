"""The Celery app of the batch workers (``SCRYON_BATCH_EXECUTOR=celery``):

    celery -A scryon_dagster.celery_worker worker -Q dagster --prefetch-multiplier=1 --concurrency 2

Built from the same broker and settings as the executor the batch jobs submit with
(``scryon_dagster.executors``), so both ends agree on acknowledgement and heartbeats.
"""

from dagster_celery.executor import CeleryExecutor
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

from scryon_dagster.executors import CELERY_CONFIG_SOURCE
from scryon_dagster.settings import BatchExecutor, SettingsError, load_settings

_settings = load_settings()
if _settings.scryon_batch_executor is not BatchExecutor.CELERY or _settings.scryon_celery_broker_url is None:
    raise SettingsError("a batch worker needs SCRYON_BATCH_EXECUTOR=celery and SCRYON_CELERY_BROKER_URL")

app = make_app(
    CeleryExecutor.for_cli(
        broker=_settings.scryon_celery_broker_url.get_secret_value(), config_source=CELERY_CONFIG_SOURCE
    ).app_args()
)
execute_plan = create_task(app)
