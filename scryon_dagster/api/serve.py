"""Serving the API with uvicorn (the ``scryon-dagster api`` command)."""

from __future__ import annotations

import logging

import uvicorn

from scryon_dagster.api.app import create_app
from scryon_dagster.settings import Settings


class QueryStringRedactor(logging.Filter):
    """Drops query strings from access-log lines: a callback URL's query is a signed capability."""

    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn's access record: (client address, method, path with query, HTTP version, status)
        if isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, http_version, status = record.args
            if isinstance(path, str):
                record.args = (client, method, path.split("?", 1)[0], http_version, status)
        return True


def serve(settings: Settings, *, host: str, port: int, local_dev: bool = False) -> None:
    """Run the API in the foreground until interrupted."""
    config = uvicorn.Config(
        create_app(settings, local_dev=local_dev), host=host, port=port, log_level="info", server_header=False
    )
    # after the Config: it (re)configures uvicorn's loggers when created
    logging.getLogger("uvicorn.access").addFilter(QueryStringRedactor())
    uvicorn.Server(config).run()
