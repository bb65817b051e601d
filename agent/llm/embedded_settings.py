"""The embedded server's settings (`NASLOOP_EMBEDDED_*`) and its one error type."""

from __future__ import annotations

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

HOST = "127.0.0.1"


class ServerError(RuntimeError):
    """The server cannot be started (or a model found); the message is one line with the fix."""


class EmbeddedSettings(BaseSettings):
    """`NASLOOP_EMBEDDED_*`: how `agent.run` and `python -m agent serve` start their own server."""

    model_config = SettingsConfigDict(
        env_prefix="NASLOOP_EMBEDDED_", env_file=".env", extra="ignore"
    )

    model: str | None = Field(None, description="GGUF path or OWNER/REPO:FILE.gguf")
    port: int = Field(8080, ge=1, le=65535, description="port on 127.0.0.1")
    ctx_size: int = Field(8192, ge=512, description="context in tokens (prompt + answer)")
    threads: int | None = Field(None, ge=1, description="CPU threads; default: half the cores")
    gpu_layers: int | None = Field(None, ge=-1, description="layers offloaded to the GPU")
    ready_timeout_s: float = Field(300.0, gt=0, description="longest wait for the model to load")

    def local_url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"


def embedded_settings() -> EmbeddedSettings:
    try:
        return EmbeddedSettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"NASLOOP_EMBEDDED_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}"
            for e in exc.errors()
        )
        raise ServerError(f"bad setting ({problems})") from None
