"""Evaluation settings, read from `NASLOOP_*` environment variables and `.env`.

Everything that decides how one candidate is trained and contained lives here, so the
`train_candidate` tool, the search and the benchmarks agree. `.env.example` documents each one.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sandbox.hardware import HardwareLimits

ENV_PREFIX = "NASLOOP_"


BAD_INPUT_EXIT = 2  # every nasloop command's exit code for bad input (nothing was written)


class SettingsError(ValueError):
    """A setting has a bad value; the message is one line that names it and the fix."""


def bad_input(exc: BaseException | str) -> int:
    """How every nasloop command reports bad input: `nasloop: error: <one line naming the fix>`
    on stderr; returns the exit code, BAD_INPUT_EXIT."""
    print(f"nasloop: error: {exc}", file=sys.stderr)
    return BAD_INPUT_EXIT


class SandboxSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", validate_default=True
    )

    dataset: str = Field("cifar10", description="cifar10, cifar100, imagenette, mnist5k, or a path")
    data_dir: Path = Field(
        Path("~/.cache/nasloop/data"), description="where datasets are downloaded and prepared"
    )
    runs_dir: Path = Field(Path("runs"), description="run archives and the evaluation cache")
    val_size: int | None = Field(
        None, gt=0, description="validation images carved from train (default 5000 CIFAR, 10% else)"
    )
    split_seed: int = Field(0, ge=0, description="seed of the fixed validation split")

    sandbox: Literal["auto", "docker", "process"] = Field(
        "auto", description="docker when an engine answers (auto), or the process backend"
    )
    image: str = Field("nasloop-sandbox:latest", description="Docker image for the docker backend")
    warm_worker: bool = Field(
        True, description="docker: one warm container, each candidate a fresh forked process"
    )
    timeout_s: float = Field(1800.0, gt=0, description="wall-time limit per candidate, seconds")
    memory_mb: int = Field(8192, ge=256, description="memory limit per candidate, MiB")
    pids_limit: int = Field(256, ge=16, description="process/thread limit per candidate")
    scratch_mb: int = Field(512, ge=16, description="private writable scratch per candidate, MiB")
    gpus: str = Field("auto", description="GPU ids for candidates: auto (first GPU), none, or 0,1")
    gpu_memory_fraction: float | None = Field(
        None, gt=0, le=1, description="cap a candidate's share of GPU memory (LLM on the same card)"
    )
    executor: str = Field(
        "local", description="where candidates train: local, ray (local Ray), ray://HOST:PORT"
    )
    ray_retries: int = Field(
        2, ge=0, le=10, description="ray: runs again of an evaluation whose worker or node died"
    )

    train_limit: int | None = Field(None, gt=0, description="use only the first N training images")
    epochs: int = Field(1, ge=1, description="training epochs per candidate (the proxy uses 1)")
    batch_size: int = Field(128, ge=1, description="training batch size")
    lr: float = Field(0.01, gt=0, description="SGD learning rate (start of the cosine schedule)")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    weight_decay: float = Field(5e-4, ge=0, description="SGD weight decay")
    lr_schedule: Literal["epoch_cosine", "step_cosine"] = Field(
        "epoch_cosine", description="cosine per epoch (flat within one), or per batch"
    )
    seed: int = Field(0, ge=0, description="training seed")
    autocast: Literal["auto", "off", "bf16", "fp16"] = Field(
        "auto", description="mixed precision: auto = bf16 where fast (GPU; CPU with AMX), else fp32"
    )
    channels_last: bool = Field(True, description="train in channels-last memory format")
    threads: int = Field(0, ge=0, description="torch threads inside the sandbox; 0 = torch default")

    # Hardware limits (unset: none); a net over one is an `over_limit` failure (`HardwareLimits`)
    max_params: int | None = Field(None, gt=0, description="hardware limit: parameters")
    max_flops: int | None = Field(None, gt=0, description="hardware limit: FLOPs per image")
    max_peak_memory_mb: float | None = Field(
        None,
        gt=0,
        description="hardware limit: the training job's peak host memory (its cgroup), MiB",
    )
    max_latency_ms: float | None = Field(
        None, gt=0, description="hardware limit: median batch-1 forward on the device, ms"
    )

    @field_validator("data_dir", "runs_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("executor")
    @classmethod
    def _check_executor(cls, value: str) -> str:
        value = value.strip()
        if value in ("local", "ray"):
            return value
        host, _, port = value.removeprefix("ray://").rpartition(":")
        if value.startswith("ray://") and host and port.isdigit():
            return value
        raise ValueError("use local, ray (a local Ray cluster) or ray://HOST:PORT")

    @field_validator("gpus")
    @classmethod
    def _check_gpus(cls, value: str) -> str:
        value = value.strip().lower()
        if value in ("auto", "none", ""):
            return value or "none"
        if all(part.strip().isdigit() for part in value.split(",")):
            return ",".join(part.strip() for part in value.split(","))
        raise ValueError("use auto, none, or comma-separated GPU ids such as 0,1")

    def hardware_limits(self) -> HardwareLimits:
        return HardwareLimits(
            self.max_params, self.max_flops, self.max_peak_memory_mb, self.max_latency_ms
        )

    def gpu_ids(self) -> tuple[str, ...]:
        if self.gpus == "none":
            return ()
        if self.gpus == "auto":
            import torch

            return ("0",) if torch.cuda.is_available() else ()
        return tuple(self.gpus.split(","))

    def train_config(self) -> dict[str, Any]:
        """The runner's hyperparameters (everything but the dataset's own properties)."""
        return {
            "train_limit": self.train_limit,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "momentum": self.momentum,
            "weight_decay": self.weight_decay,
            "lr_schedule": self.lr_schedule,
            "seed": self.seed,
            "autocast": self.autocast,
            "channels_last": self.channels_last,
            "threads": self.threads,
            "gpu_memory_fraction": self.gpu_memory_fraction,
        }


def explain(error: ValidationError, prefix: str = ENV_PREFIX) -> str:
    """One line per bad field: the variable's name, what was given, and what is accepted."""
    parts = []
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else "?"
        given = item.get("input")
        shown = "" if isinstance(given, dict) else f"={given!r}"
        parts.append(f"{prefix}{field.upper()}{shown} is invalid: {item['msg']}")
    return "; ".join(parts) + " (see .env.example)"


def load_settings(**overrides: Any) -> SandboxSettings:
    """Settings from the environment, with explicit overrides winning; SettingsError when bad."""
    try:
        return SandboxSettings(**overrides)
    except ValidationError as exc:
        raise SettingsError(explain(exc)) from None
