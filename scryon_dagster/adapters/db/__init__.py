"""The call database: every SQL statement lives in this package."""
