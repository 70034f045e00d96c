"""One dynamic partition per call (the call id); the QUEUED sensor adds keys in bulk."""

import dagster as dg

CALLS_PARTITIONS = "calls"
calls_partitions = dg.DynamicPartitionsDefinition(name=CALLS_PARTITIONS)

# Tags that tie a run to the pickup batch whose calls it processes.
BATCH_TAG = "scryon/batch"
RUN_KIND_TAG = "scryon/kind"
# How many of a run's calls are automatic retries of a transient failure (shown on the Runs page).
RETRIES_TAG = "scryon/retries"
