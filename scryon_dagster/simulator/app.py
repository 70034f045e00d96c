"""The provider simulator: one HTTP app speaking the Lemonfox, pyannoteAI and OpenAI contracts.

Same paths, fields, status codes and JSON shapes as the real hosts, so the adapters run against it
unchanged (only base URLs and keys differ). It is labelled as a simulator everywhere it shows: a
startup log line, an ``x-scryon-simulator: 1`` header on every response and ``GET /_sim/health``.

Base URLs for a simulator on port P: ``LEMONFOX_BASE_URL=http://127.0.0.1:P/v1``,
``PYANNOTE_BASE_URL=http://127.0.0.1:P``, ``LLM_BASE_URL=http://127.0.0.1:P/v1``.

Admin API (not part of any provider contract):
- ``POST /_sim/faults`` ``{"provider", "fault", "times"=1 (-1 always), "probability"=1, "match_audio_seconds"?,
  "match_call_id"?, "retry_after_seconds"?, "delay_seconds"=5}``; ``GET``/``DELETE /_sim/faults``
  (``?provider=``). ``probability`` (0 < p <= 1) is the share of matching requests that get the fault,
  for as long as ``times`` lasts: each request some fault matches draws one number from a seeded
  generator, and the matching faults, in registration order, own consecutive slices of [0, 1) as wide
  as their probability. So ``http_500`` at 0.15 then ``http_503`` at 0.15 (both ``times: -1``) fail 15 %
  of requests each; a fault without a probability always wins, as before.
- ``POST /_sim/rate_limit`` ``{"provider", "per_minute"}`` (null clears): sliding 60 s window, 429 +
  ``Retry-After`` beyond it.
- ``POST /_sim/latency`` ``{"provider", "seconds"}``: extra latency on every request of a provider.
- ``GET``/``DELETE /_sim/stats``: request counts per provider and route, 429s, faults served,
  webhook/callback deliveries and the peak number of requests in flight per provider.
- ``GET /_sim/stats/subjects``: per subject and provider, ``requests`` and usable ``answers`` (a
  complete transcription or completion, a diarization job's intact result served for the first time).
  The subject is the call id a request names (pyannote media keys ``scryon-<call id>-...``, the LLM
  prompt's ``callId``), else for a transcription ``audio:<seconds>`` (its audio's duration to the ms).
  Benchmarks read it to find provider work paid twice. Cleared with the statistics.
- ``POST /_sim/reset`` (optional body ``{"seed": n}``: reseeds the fault draws): clears faults, rate
  limits, extra latency and statistics. The generator starts from the server's ``seed``.

Where faults land: ``http_429`` (with ``Retry-After``, default 1 s, and ``retry-after-ms`` for the LLM),
``http_500``, ``http_503`` (with ``Retry-After`` only when ``retry_after_seconds`` is given),
``http_400``, ``http_402``, ``hang`` (no answer until the client gives up) and ``insufficient_quota``
(LLM only) answer the next matching API request of the provider (for pyannote: media input, job
creation or a job poll; never the presigned upload). ``slow`` holds such a request ``delay_seconds``
(at most 600), then answers it normally: keep it below the client's timeout, unlike ``hang``.
``truncated_body`` answers 200 with the real JSON body cut part-way (at a seeded point): a
transcription, a chat completion, or the poll that returns a finished pyannote job's result.
``malformed_json`` and ``empty_transcript`` shape a transcription; ``job_failed``, ``job_canceled``,
``slow_poll`` (the job stays running for an hour) and ``malformed_json`` attach to the next pyannote job
created; ``refusal``, ``finish_length`` and ``malformed_json`` shape a chat completion. Only requests
whose audio is known can match ``match_audio_seconds``; ``match_call_id`` matches the prompt's ``callId``.

The simulator keeps only durations of the audio it receives, never the audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import FastAPI, Response

from scryon_dagster.simulator.admin import AdminRoutes
from scryon_dagster.simulator.control import PROFILES, FaultBook, Provider
from scryon_dagster.simulator.lemonfox import LemonfoxRoutes
from scryon_dagster.simulator.llm import LlmRoutes
from scryon_dagster.simulator.plumbing import LabelResponses, SimulatorState, audio_subject, instrumented
from scryon_dagster.simulator.pyannote import PyannoteRoutes

logger = logging.getLogger(__name__)

# audio_subject is also imported from here by benchmarks and tests that read the subject statistics
__all__ = ["audio_subject", "create_app"]


def create_app(profile: str = "fast", seed: int = 0, webhook_secret: str | None = None) -> FastAPI:
    """The simulator as an ASGI app. ``webhook_secret`` signs pyannote webhook deliveries (a random
    one is used when omitted, so deliveries then cannot be verified)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown simulator profile {profile!r}; choose one of {sorted(PROFILES)}")
    state = SimulatorState(
        profile=PROFILES[profile],
        seed=seed,
        webhook_secret=webhook_secret or secrets.token_urlsafe(32),
        faults=FaultBook(seed),
    )
    lemonfox, pyannote, llm, admin = LemonfoxRoutes(state), PyannoteRoutes(state), LlmRoutes(state), AdminRoutes(state)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logger.warning(
            "SIMULATOR: serving simulated Lemonfox, pyannoteAI and OpenAI APIs (profile=%s); "
            "no real provider is called",
            profile,
        )
        yield
        for task in list(state.tasks):
            task.cancel()
        await asyncio.gather(*state.tasks, return_exceptions=True)
        if state.outbound is not None:
            await state.outbound.aclose()

    app = FastAPI(
        title="Scryon provider simulator",
        description="Simulated Lemonfox, pyannoteAI and OpenAI-compatible APIs for tests and demos.",
        lifespan=lifespan,
        docs_url="/_sim/docs",
        openapi_url="/_sim/openapi.json",
        redoc_url=None,
    )
    app.state.simulator = state
    provider_routes: list[tuple[str, Callable[..., Awaitable[Response]], str, Provider]] = [
        ("/v1/audio/transcriptions", lemonfox.transcriptions, "POST", Provider.LEMONFOX),
        ("/v1/media/input", pyannote.media_input, "POST", Provider.PYANNOTE),
        ("/v1/diarize", pyannote.diarize, "POST", Provider.PYANNOTE),
        ("/v1/voiceprint", pyannote.voiceprint, "POST", Provider.PYANNOTE),
        ("/v1/identify", pyannote.identify, "POST", Provider.PYANNOTE),
        ("/v1/jobs/{job_id}", pyannote.get_job, "GET", Provider.PYANNOTE),
        ("/v1/chat/completions", llm.chat_completions, "POST", Provider.LLM),
    ]
    for path, handler, method, provider in provider_routes:
        app.add_api_route(path, instrumented(state, provider, handler), methods=[method])
    admin_routes: list[tuple[str, Callable[..., Awaitable[Response]], str]] = [
        ("/_sim/presigned/{token}", pyannote.presigned_put, "PUT"),
        ("/_sim/health", admin.health, "GET"),
        ("/_sim/faults", admin.add_fault, "POST"),
        ("/_sim/faults", admin.list_faults, "GET"),
        ("/_sim/faults", admin.clear_faults, "DELETE"),
        ("/_sim/rate_limit", admin.set_rate_limit, "POST"),
        ("/_sim/latency", admin.set_latency, "POST"),
        ("/_sim/stats", admin.get_stats, "GET"),
        ("/_sim/stats", admin.reset_stats, "DELETE"),
        ("/_sim/stats/subjects", admin.get_subject_stats, "GET"),
        ("/_sim/reset", admin.reset, "POST"),
    ]
    for path, handler, method in admin_routes:
        app.add_api_route(path, handler, methods=[method], include_in_schema=False)
    app.add_middleware(LabelResponses)
    return app
