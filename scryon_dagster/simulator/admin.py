"""The simulator's own admin API under ``/_sim`` (not part of any provider contract): health, faults,
rate limits, extra latency, statistics and reset. ``app.py`` documents the requests."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from scryon_dagster.simulator.control import (
    ALWAYS,
    DEFAULT_SLOW_SECONDS,
    Fault,
    FaultName,
    Provider,
    SlidingWindowLimiter,
)
from scryon_dagster.simulator.plumbing import BadRequestError, SimulatorState, json_body


class AdminRoutes:
    def __init__(self, state: SimulatorState) -> None:
        self.state = state

    async def health(self, request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "simulator": True,
                "description": "Scryon provider simulator: simulated Lemonfox, pyannoteAI and OpenAI APIs",
                "profile": self.state.profile.name,
                "providers": [provider.value for provider in Provider],
            }
        )

    async def add_fault(self, request: Request) -> Response:
        try:
            body = await json_body(request)
            fault = _fault_from(body)
            self.state.faults.add(fault)
        except (BadRequestError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"fault": fault.describe()}, status_code=201)

    async def list_faults(self, request: Request) -> Response:
        return JSONResponse({"faults": self.state.faults.describe()})

    async def clear_faults(self, request: Request) -> Response:
        name = request.query_params.get("provider")
        try:
            provider = Provider(name) if name else None
        except ValueError:
            return JSONResponse({"error": f"unknown provider {name!r}"}, status_code=400)
        self.state.faults.clear(provider)
        return JSONResponse({"faults": self.state.faults.describe()})

    async def set_rate_limit(self, request: Request) -> Response:
        try:
            body = await json_body(request)
            provider = Provider(str(body.get("provider")))
            per_minute = body.get("per_minute")
            if per_minute is None:
                self.state.limits.pop(provider, None)
            elif isinstance(per_minute, int) and not isinstance(per_minute, bool):
                self.state.limits[provider] = SlidingWindowLimiter(per_minute)
            else:
                raise BadRequestError("per_minute must be an integer or null")
        except (BadRequestError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"rate_limits": {p.value: lim.per_minute for p, lim in self.state.limits.items()}})

    async def set_latency(self, request: Request) -> Response:
        try:
            body = await json_body(request)
            provider = Provider(str(body.get("provider")))
            seconds = body.get("seconds")
            if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
                raise BadRequestError("seconds must be a non-negative number")
        except (BadRequestError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        self.state.extra_latency[provider] = float(seconds)
        return JSONResponse({"extra_latency": {p.value: v for p, v in self.state.extra_latency.items()}})

    async def get_stats(self, request: Request) -> Response:
        return JSONResponse(self.state.stats.snapshot())

    async def reset_stats(self, request: Request) -> Response:
        self.state.stats.reset()
        return JSONResponse(self.state.stats.snapshot())

    async def get_subject_stats(self, request: Request) -> Response:
        return JSONResponse({"subjects": self.state.stats.subjects()})

    async def reset(self, request: Request) -> Response:
        try:
            body = await json_body(request) if await request.body() else {}
            seed = body.get("seed")
            if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
                raise BadRequestError("seed must be an integer or null")
        except BadRequestError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        if seed is not None:
            self.state.faults.reseed(seed)
        self.state.faults.clear()
        self.state.limits.clear()
        self.state.extra_latency.clear()
        self.state.stats.reset()
        return JSONResponse({"status": "reset"})


def _fault_from(body: dict[str, Any]) -> Fault:
    try:
        provider = Provider(str(body.get("provider")))
        name = FaultName(str(body.get("fault")))
    except ValueError:
        raise BadRequestError(
            f"provider must be one of {[p.value for p in Provider]} and fault one of {[f.value for f in FaultName]}"
        ) from None
    times = body.get("times", 1)
    match_audio = body.get("match_audio_seconds")
    match_call_id = body.get("match_call_id")
    retry_after = body.get("retry_after_seconds")
    probability = body.get("probability", 1.0)
    delay = body.get("delay_seconds", DEFAULT_SLOW_SECONDS)
    if not isinstance(times, int) or isinstance(times, bool) or (times < 1 and times != ALWAYS):
        raise BadRequestError("times must be a positive integer or -1 (always)")
    if match_audio is not None and not isinstance(match_audio, int | float):
        raise BadRequestError("match_audio_seconds must be a number or null")
    if match_call_id is not None and not isinstance(match_call_id, str):
        raise BadRequestError("match_call_id must be a string or null")
    if retry_after is not None and (not _is_number(retry_after) or retry_after < 0):
        raise BadRequestError("retry_after_seconds must be a non-negative number or null")
    if not _is_number(probability) or not 0 < probability <= 1:
        raise BadRequestError("probability must be a number greater than 0 and at most 1")
    if not _is_number(delay) or delay <= 0:
        raise BadRequestError("delay_seconds must be a positive number")
    return Fault(
        provider=provider,
        name=name,
        times=times,
        match_audio_seconds=float(match_audio) if match_audio is not None else None,
        match_call_id=match_call_id,
        retry_after_seconds=float(retry_after) if retry_after is not None else None,
        probability=float(probability),
        delay_seconds=float(delay),
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
