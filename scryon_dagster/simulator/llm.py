"""Simulated OpenAI-compatible chat completions (``POST /v1/chat/completions``): the analysis schema
gets an analysis of the prompt's transcript, any other JSON schema its smallest valid instance."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import secrets
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from scryon_dagster.simulator.chat import (
    ANALYSIS_SCHEMA_NAME,
    PromptCache,
    analysis_answer,
    completion_document,
    estimate_tokens,
    find_call_id,
    minimal_instance,
)
from scryon_dagster.simulator.control import FAULTS_BY_PROVIDER, FaultName, Provider
from scryon_dagster.simulator.plumbing import BadRequestError, ProviderRoutes, SimulatorState, error_response, json_body


class LlmRoutes(ProviderRoutes):
    def __init__(self, state: SimulatorState) -> None:
        super().__init__(state)
        self.prompt_cache = PromptCache()

    async def chat_completions(self, request: Request) -> Response:
        provider = Provider.LLM
        refused = self._gate(request, provider, "POST /v1/chat/completions")
        if refused:
            return refused
        try:
            body = await json_body(request)
            model, system, user, schema_name, schema = _chat_request(body)
        except BadRequestError as exc:
            return error_response(provider, 400, str(exc), param=exc.field_name)
        call_id = find_call_id(user)
        self.state.stats.count_for_subject(call_id, provider.value)
        fault = self._take_fault(provider, FAULTS_BY_PROVIDER[provider], call_id=call_id)
        answered = await self._serve_fault(request, fault)
        if answered:
            return answered
        rng = random.Random(f"{self.state.seed}:llm:{call_id or hashlib.sha256(user.encode()).hexdigest()}")
        latency = self.state.profile.llm_seconds(rng)
        await asyncio.sleep(latency)
        headers = {"x-request-id": f"req_{secrets.token_hex(16)}", "openai-processing-ms": str(int(latency * 1000))}
        if fault and fault.name is FaultName.MALFORMED_JSON:
            return Response(b'{"id": "chatcmpl-sim", "choices": [{"message": {"content": "{\\"sch', headers=headers)
        if schema_name == ANALYSIS_SCHEMA_NAME:
            content: str | None = json.dumps(analysis_answer(user))
        elif schema is not None:
            content = json.dumps(minimal_instance(schema))
        else:
            content = "This is a simulated completion."
        refusal, finish_reason = None, "stop"
        if fault and fault.name is FaultName.REFUSAL:
            content, refusal = None, "I'm sorry, but I can't help with that request."
        elif fault and fault.name is FaultName.FINISH_LENGTH and content is not None:
            content, finish_reason = content[: len(content) // 2], "length"
        document = completion_document(
            model=model,
            content=content,
            refusal=refusal,
            finish_reason=finish_reason,
            prompt_tokens=estimate_tokens(system) + estimate_tokens(user) + 7,
            completion_tokens=estimate_tokens(content or refusal or ""),
            cached_tokens=self.prompt_cache.cached_tokens(system) if system else 0,
        )
        if fault and fault.name is FaultName.TRUNCATED_BODY:
            cut = self.state.faults.truncate(json.dumps(document).encode())
            return Response(cut, media_type="application/json", headers=headers)
        self.state.stats.count_for_subject(call_id, provider.value, answered=True)
        return JSONResponse(document, headers=headers)


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    raise BadRequestError("message content must be a string or a list of parts", "messages")


def _chat_request(body: dict[str, Any]) -> tuple[str, str, str, str | None, dict[str, Any] | None]:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequestError("you must provide a model parameter", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise BadRequestError("messages must be a non-empty array of message objects", "messages")
    system = "\n".join(_message_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer"))
    user = "\n".join(_message_text(m.get("content")) for m in messages if m.get("role") == "user")
    response_format = body.get("response_format")
    if response_format is not None and not isinstance(response_format, dict):
        raise BadRequestError("response_format must be an object", "response_format")
    if response_format is None or response_format.get("type") in ("text", "json_object"):
        return model, system, user, None, None
    json_schema = response_format.get("json_schema") if response_format.get("type") == "json_schema" else None
    if not isinstance(json_schema, dict) or not isinstance(json_schema.get("name"), str):
        raise BadRequestError("response_format.json_schema.name is required", "response_format")
    schema = json_schema.get("schema")
    if not isinstance(schema, dict):
        raise BadRequestError("response_format.json_schema.schema must be an object", "response_format")
    return model, system, user, json_schema["name"], schema
