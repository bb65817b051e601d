"""`search_architectures`: a whole architecture search as one LangChain tool, for other agents.

An agent that binds this tool chooses only what a user would: the dataset, how many candidates,
and optional constraints for the Generator. Everything else (LLM servers, sandbox, budgets) comes
from the `NASLOOP_*` settings and `.env`, as for `python -m agent.run`. The search runs in this
process, blocks until it is done, and leaves a normal run directory behind that
`python -m agent.run --run-id RUN_ID` can resume or extend.

Bad arguments are handled in two ways. Ones the schema can see (a missing dataset, iterations < 1)
make LangChain raise before anything runs (an agent's tool node turns that into an error message
for the model). Ones only the environment can judge (an unknown dataset, no sandbox, an LLM server
that does not answer) come back as `{"error": "..."}`: one line naming the fix, nothing written.
A run that stops half way returns `{"error": ..., "run_id": ...}`: it is saved and resumable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.tools import tool
from pydantic import BaseModel, Field

DESCRIPTION = (
    "Run a neural architecture search: an LLM writes candidate PyTorch networks for an image "
    "classification dataset, each is trained for one epoch in a sandbox, and the best is kept. "
    "Slow: each iteration trains one network. Returns best_code (a Python module defining "
    "`class Net(nn.Module)`), best_val_accuracy, run_id, success_rate and iterations; or "
    "{'error': message} when the request cannot run here."
)


class SearchRequest(BaseModel):
    """The tool's arguments, as the calling model sees them."""

    dataset: str = Field(
        description="cifar10, cifar100, imagenette, mnist5k, or a folder of images (ImageFolder)"
    )
    iterations: int = Field(ge=1, description="how many candidate networks to generate and train")
    constraints: str = Field(
        "",
        description="optional limits or requirements for the networks, in plain words "
        "(for example: 'at most 100k parameters, no attention layers')",
    )


@tool("search_architectures", args_schema=SearchRequest, description=DESCRIPTION)
def search_architectures(dataset: str, iterations: int, constraints: str = "") -> dict[str, Any]:
    # The one place where `tools` reaches into `agent` (DESIGN lets tools import only `sandbox`):
    # this tool *is* the whole search. The import is lazy so that `tools` stays importable, and
    # `train_candidate` usable, without the graph's dependencies.
    from agent.llm.client import LLMUnavailable
    from agent.search import BAD_INPUT, new_run_id, preflight_all, search
    from agent.settings import load_settings
    from sandbox.faults import InfrastructureFault

    try:
        settings = load_settings(dataset=dataset, iterations=iterations, constraints=constraints)
        preflight_all(settings)
    except BAD_INPUT as exc:
        return {"error": str(exc)}
    run_id = new_run_id()
    try:
        # called from a tool node of another graph, the search still checkpoints under its own
        # thread (run id) and root namespace: checked with a checkpointed parent, langgraph 1.2
        summary = search(settings, run_id, resuming=False, quiet=True)
    except (LLMUnavailable, InfrastructureFault) as exc:
        return {
            "error": f"{exc}; the run is saved: resume it with "
            f"`python -m agent.run --run-id {run_id}`",
            "run_id": run_id,
        }
    path = summary.get("best_code_path")
    return {
        "best_code": Path(path).read_text(encoding="utf-8") if path else None,
        "best_val_accuracy": summary["best_val_accuracy"],
        "run_id": run_id,
        "success_rate": summary["success_rate"],
        "iterations": summary["iterations"],
        "run_dir": summary["run_dir"],
        "stop_reason": summary["stop_reason"],
    }
