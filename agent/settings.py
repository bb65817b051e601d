"""All of nasloop's settings: the sandbox's, plus the LLM roles and the search.

One pydantic-settings object, read from `NASLOOP_*` variables and `.env`, and also the graph's
runtime context (`context_schema`), so the CLI, LangGraph Studio and other callers share one
vocabulary. `.env.example` documents every field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import (
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from agent.check.llm_fixes import check_fix_order, fix_plan
from sandbox.settings import SandboxSettings, SettingsError, explain

Role = Literal["generator", "improver"]
# Old setting names (negated) → the positive settings that replaced them
OLD_NAMES = {"no_improver": "improver", "no_history": "memory", "no_reference": "reference"}
_BOOL = TypeAdapter(bool)


@dataclass(frozen=True)
class RoleConfig:
    base_url: str
    model: str
    api_key: str
    temperature: float
    max_tokens: int


class Settings(SandboxSettings):
    generator_base_url: str = Field(
        "http://127.0.0.1:8080/v1", description="OpenAI-compatible URL of the Generator's server"
    )
    generator_model: str = Field(
        "Qwen/Qwen2.5-Coder-7B-Instruct", description="Generator model name (vLLM: the hub id)"
    )
    generator_api_key: SecretStr = Field(SecretStr("local"), description="key, if the server asks")
    generator_temperature: float = Field(
        0.7, ge=0, le=2, description="Generator's sampling temperature"
    )
    generator_max_tokens: int = Field(2048, ge=64, description="longest answer: one whole module")
    improver_base_url: str | None = Field(None, description="default: the Generator's")
    improver_model: str | None = Field(None, description="default: the Generator's")
    improver_api_key: SecretStr | None = Field(None, description="default: the Generator's")
    improver_temperature: float = Field(
        0.3, ge=0, le=2, description="Improver's sampling temperature"
    )
    improver_max_tokens: int = Field(512, ge=64, description="longest answer: one short JSON")
    llm_timeout_s: float = Field(300.0, gt=0, description="one LLM request, seconds")
    llm_retries: int = Field(3, ge=0, le=10, description="retries of a failed LLM request")

    iterations: int = Field(100, ge=1, description="candidates to generate and train")
    history_k: int = Field(5, ge=1, description="triples in the memory window (K)")
    parallel: int = Field(
        1, ge=1, le=256, description="candidates per round, generated and trained in parallel"
    )
    target_accuracy: float | None = Field(
        None, gt=0, le=1, description="stop once the best validation accuracy reaches this"
    )
    llm_calls: int | None = Field(
        None,
        ge=1,
        description="also stop after this many LLM calls (Generator, re-asks, repairs, Improver)",
    )
    improver: bool = Field(
        True, description="ask the Improver for the next change (off: ablation, no suggestions)"
    )
    memory: bool = Field(
        True, description="show the Generator the K-window of triples (off: ablation, K=0)"
    )
    reference: bool = Field(
        True, description="show the Generator the best code so far (off: ablation)"
    )
    # The old, negated names of the three above, still read (NASLOOP_NO_IMPROVER=1, a Studio
    # context's `no_improver`, a run saved before the rename); never written back.
    no_improver: bool | None = Field(None, exclude=True, description="old name: not improver")
    no_history: bool | None = Field(None, exclude=True, description="old name: not memory")
    no_reference: bool | None = Field(None, exclude=True, description="old name: not reference")
    concrete_advice: bool = Field(
        False,
        description="after a success, show the Improver a menu of layer-level moves and replace "
        "advice that repeats the window or names no layer with the first untried move",
    )
    single_shot: bool = Field(
        False, description="baseline: the Generator sees only the task, no Improver is called"
    )
    run_seed: int = Field(0, ge=0, description="base of the per-call LLM sampling seed")
    constraints: str = Field("", description="optional limits/requirements told to the Generator")
    # The check step; both off, with prompt_style paper: the paper's protocol
    novelty: bool = Field(
        True, description="never train a program this run already tried: re-ask, then `duplicate`"
    )
    auto_fix: bool = Field(
        True, description="lint and dry-run each candidate, fix mechanical errors before training"
    )
    dead_layers: bool = Field(
        True, description="with auto_fix: a net whose layers get no gradient fails its dry run"
    )
    # LLM-side fixes of a failed program; 0 until the benchmark says otherwise
    repair_attempts: int = Field(
        0,
        ge=0,
        le=5,
        description="LLM-side fixes per failed iteration, after the mechanical ones (0: none)",
    )
    fix_order: str = Field(
        "repair,resample",
        description="the LLM-side fixes in turn, the last repeating: repair (the failing lines "
        "shown), resample (hotter, told the error)",
    )
    prompt_style: Literal["short", "paper"] = Field(
        "short",
        description="short: task, a head skeleton, the contract last; paper: the long prompts",
    )
    edit_mode: Literal["full", "diff", "auto"] = Field(
        "full",
        description="full: the Generator writes whole modules; diff: SEARCH/REPLACE edit blocks "
        "against the code it is shown; auto: either",
    )
    # What keeps a small Generator from copying the network it is shown (issue 25); off until
    # bench/search_quality.py's tournament, copy_heat and fill_in variants say otherwise
    parent: Literal["best", "tournament"] = Field(
        "best",
        description="the network the Generator is shown to change: the best so far, or "
        "tournament: the better of 2 drawn (seed: run seed + iteration) from the top 4 trained "
        "networks with different layers",
    )
    copy_heat: bool = Field(
        False,
        description="after a candidate that copied (a duplicate, or the layers of the network it "
        "was shown), the next Generator call samples 0.3 hotter per copy in a row, up to 1.3",
    )
    fill_in: bool = Field(
        False,
        description="the Generator writes only the layers of a fixed skeleton's `features`; the "
        "host splices them in (a whole module is still read as one)",
    )

    final_top_k: int = Field(
        3, ge=0, description="at the end, retrain the top k on train, score once on test (0: skip)"
    )
    final_epochs: int = Field(1, ge=1, description="training epochs of each final-test candidate")
    final_weights: bool = Field(True, description="keep the final test's trained weights")

    @model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        """no_improver/no_history/no_reference → not improver/memory/reference; the new name
        wins where both are given."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for old, new in OLD_NAMES.items():
            if data.get(old) is None:
                continue
            try:
                value = _BOOL.validate_python(data[old])
            except ValidationError:
                continue  # left in place: its own field refuses it, under its own name
            del data[old]
            if new not in data:
                data[new] = not value
        return data

    @field_validator("fix_order")
    @classmethod
    def _check_fix_order(cls, value: str) -> str:
        return check_fix_order(value)

    def fix_plan(self) -> tuple[str, ...]:
        """The strategy of each LLM-side fix a failed iteration may ask for, in order."""
        return fix_plan(self.fix_order, self.repair_attempts)

    def role(self, role: Role) -> RoleConfig:
        if role == "generator":
            return RoleConfig(
                self.generator_base_url,
                self.generator_model,
                self.generator_api_key.get_secret_value(),
                self.generator_temperature,
                self.generator_max_tokens,
            )
        key = self.improver_api_key or self.generator_api_key
        return RoleConfig(
            self.improver_base_url or self.generator_base_url,
            self.improver_model or self.generator_model,
            key.get_secret_value(),
            self.improver_temperature,
            self.improver_max_tokens,
        )


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment with explicit overrides winning; SettingsError when bad."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(explain(exc)) from None
