"""Per-call orchestration without Dagster: given adapters and a batch of calls, run the stages."""
