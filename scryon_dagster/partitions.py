"""One dynamic partition per call (the call id); the QUEUED sensor adds keys in bulk."""

import dagster as dg

calls_partitions = dg.DynamicPartitionsDefinition(name="calls")

# Tags that tie a run to the pickup batch whose calls it processes.
BATCH_TAG = "scryon/batch"
RUN_KIND_TAG = "scryon/kind"
