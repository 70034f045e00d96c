"""Thin I/O adapters: typed in, typed out, no Dagster.

Provider clients (``lemonfox``, ``pyannote``, ``llm``) share the retry/deadline plumbing in ``http``
and the error taxonomy in ``errors``; ``webhooks`` signs and verifies provider deliveries.
"""
