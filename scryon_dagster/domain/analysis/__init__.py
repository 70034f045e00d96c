"""The analysis domain: schema v3 models, strict schema, prompts, output validation, action-item rows,
cost estimates and the opt-in LLM speaker-naming pass. Pure: no I/O."""

from scryon_dagster.domain.analysis.action_items import (
    ActionItemDraft,
    ActionItemPriority,
    SentimentSummary,
    build_action_item_drafts,
    build_sentiment_summary,
    parse_due_date,
    resolve_owner,
)
from scryon_dagster.domain.analysis.contract import StrictOutputFailure, strict_json_schema
from scryon_dagster.domain.analysis.cost import (
    ProviderCostEstimate,
    estimate_analysis_prompt_tokens,
    estimate_llm_cost_usd,
    estimate_provider_cost_usd,
    estimate_tokens,
)
from scryon_dagster.domain.analysis.models import (
    CURRENT_SCHEMA_VERSION,
    Analysis,
    AnalysisArtifactError,
    parse_analysis,
)
from scryon_dagster.domain.analysis.prompt import (
    ANALYSIS_SCHEMA_NAME,
    AnalysisPrompt,
    analysis_response_format,
    build_analysis_prompt,
)
from scryon_dagster.domain.analysis.speaker_naming import (
    NAMING_SCHEMA_NAME,
    NamingWarning,
    SpeakerNamingOutcome,
    SpeakerNamingPrompt,
    apply_speaker_naming,
    build_speaker_naming_prompt,
    speaker_naming_response_format,
)
from scryon_dagster.domain.analysis.validation import AnalysisInvalidOutput, validate_analysis_output

__all__ = [
    "ANALYSIS_SCHEMA_NAME",
    "CURRENT_SCHEMA_VERSION",
    "NAMING_SCHEMA_NAME",
    "ActionItemDraft",
    "ActionItemPriority",
    "Analysis",
    "AnalysisArtifactError",
    "AnalysisInvalidOutput",
    "AnalysisPrompt",
    "NamingWarning",
    "ProviderCostEstimate",
    "SentimentSummary",
    "SpeakerNamingOutcome",
    "SpeakerNamingPrompt",
    "StrictOutputFailure",
    "analysis_response_format",
    "apply_speaker_naming",
    "build_action_item_drafts",
    "build_analysis_prompt",
    "build_sentiment_summary",
    "build_speaker_naming_prompt",
    "estimate_analysis_prompt_tokens",
    "estimate_llm_cost_usd",
    "estimate_provider_cost_usd",
    "estimate_tokens",
    "parse_analysis",
    "parse_due_date",
    "resolve_owner",
    "speaker_naming_response_format",
    "strict_json_schema",
    "validate_analysis_output",
]
