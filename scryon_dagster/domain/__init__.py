"""Pure domain logic: no Dagster, HTTP, database, object storage or subprocess imports here."""
