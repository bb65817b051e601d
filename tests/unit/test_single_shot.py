"""The single-shot baseline through the real graph (scripted LLM roles and evaluator, as in
test_graph.py), and the hardware limits reaching every Generator prompt."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.graph import RecordingChat, run


def test_single_shot_sees_only_the_task_and_calls_no_improver(
    tmp_path: Path,
    roles: dict[str, RecordingChat],
) -> None:
    _, final = run(tmp_path, iterations=8, single_shot=True)
    assert final["iteration"] == 8 and final["ok_count"] >= 2  # a best exists to be hidden
    prompts = roles["generator"].prompts
    assert len(prompts) == 8 and len(set(prompts)) == 1  # the same task-only prompt every time
    for hidden in ("Best network", "Last attempt", "Suggestion", "Recent attempts", "width ="):
        assert hidden not in prompts[0]
    assert roles["improver"].prompts == []
    assert final["window"] == [] and not final.get("pending")


def test_the_limits_are_in_every_generator_prompt(
    tmp_path: Path,
    roles: dict[str, RecordingChat],
) -> None:
    run(tmp_path, iterations=4, max_params=50_000, constraints="no attention")
    prompts = roles["generator"].prompts
    assert len(prompts) == 4
    assert all("no attention\nHard limits: at most 50,000 parameters" in p for p in prompts)
