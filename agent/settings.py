"""All of nasloop's settings: the sandbox's, plus the LLM roles and the search.

One pydantic-settings object, read from `NASLOOP_*` variables and `.env`, and also the graph's
runtime context (`context_schema`), so the CLI, LangGraph Studio and other callers share one
vocabulary. `.env.example` documents every field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError

from sandbox.settings import SandboxSettings, SettingsError, explain

Role = Literal["generator", "improver"]


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
    generator_temperature: float = Field(0.7, ge=0, le=2)
    generator_max_tokens: int = Field(2048, ge=64, description="longest answer: one whole module")
    improver_base_url: str | None = Field(None, description="default: the Generator's")
    improver_model: str | None = Field(None, description="default: the Generator's")
    improver_api_key: SecretStr | None = Field(None, description="default: the Generator's")
    improver_temperature: float = Field(0.3, ge=0, le=2)
    improver_max_tokens: int = Field(512, ge=64)
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
    no_improver: bool = Field(False, description="ablation: no Improver, no suggestions")
    no_history: bool = Field(False, description="ablation: the Generator sees no window")
    no_reference: bool = Field(False, description="ablation: the Generator sees no best code")
    single_shot: bool = Field(
        False, description="baseline: the Generator sees only the task, no Improver is called"
    )
    run_seed: int = Field(0, ge=0, description="base of the per-call LLM sampling seed")
    constraints: str = Field("", description="optional limits/requirements told to the Generator")

    final_top_k: int = Field(
        3, ge=0, description="at the end, retrain the top k on train, score once on test (0: skip)"
    )
    final_epochs: int = Field(1, ge=1, description="training epochs of each final-test candidate")
    final_weights: bool = Field(True, description="keep the final test's trained weights")

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


def existing_run_dir(run_id: str, runs_dir: Path | None, holds: str) -> Path:
    """The directory of a finished or interrupted run (`runs_dir` defaults to NASLOOP_RUNS_DIR);
    FileNotFoundError naming the fix when it lacks `holds`, the file the caller reads."""
    run_dir = (runs_dir or load_settings().runs_dir) / run_id
    if not (run_dir / holds).is_file():
        fix = "check the run id and --runs-dir"
        raise FileNotFoundError(f"no run in {run_dir} (no {holds}): {fix}")
    return run_dir
