import json
from pathlib import Path

import pytest

from sandbox.settings import SettingsError, load_settings


def test_defaults_are_the_reference_protocol() -> None:
    s = load_settings()
    assert (s.dataset, s.sandbox, s.epochs, s.batch_size, s.lr) == ("cifar10", "auto", 1, 128, 0.01)
    assert (s.momentum, s.weight_decay, s.timeout_s) == (0.9, 5e-4, 1800.0)
    assert s.train_limit is None


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NASLOOP_DATASET", "mnist5k")
    monkeypatch.setenv("NASLOOP_TRAIN_LIMIT", "500")
    monkeypatch.setenv("NASLOOP_SANDBOX", "process")
    monkeypatch.setenv("NASLOOP_GPUS", " 0, 1 ")
    s = load_settings()
    assert (s.dataset, s.train_limit, s.sandbox, s.gpu_ids()) == (
        "mnist5k",
        500,
        "process",
        ("0", "1"),
    )
    assert s.train_config()["train_limit"] == 500


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("NASLOOP_TIMEOUT_S", "-5"),
        ("NASLOOP_MEMORY_MB", "lots"),
        ("NASLOOP_SANDBOX", "vm"),
        ("NASLOOP_TRAIN_LIMIT", "0"),
        ("NASLOOP_GPUS", "first"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{name}=") and ".env.example" in message


def test_dotenv_file_is_read(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("NASLOOP_DATASET=cifar100\nNASLOOP_TIMEOUT_S=60\n")
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert (s.dataset, s.timeout_s) == ("cifar100", 60.0)


def test_every_setting_is_documented_in_env_example() -> None:
    from pathlib import Path

    from agent.llm.embedded_settings import EmbeddedSettings
    from agent.settings import Settings

    text = (Path(__file__).resolve().parents[2] / ".env.example").read_text()
    from agent.settings import OLD_NAMES

    names = [f"NASLOOP_{n.upper()}" for n in Settings.model_fields if n not in OLD_NAMES]
    names += [f"NASLOOP_EMBEDDED_{n.upper()}" for n in EmbeddedSettings.model_fields]
    names += ["NASLOOP_LLAMA_SERVER", "NASLOOP_LLAMA_CMAKE_ARGS"]
    missing = [n for n in names if f"{n}=" not in text]
    assert missing == []


def _bad_value(annotation: object) -> str | None:
    """A value the field's type refuses, or None for free-text fields (paths, names, URLs)."""
    import typing

    options = [a for a in typing.get_args(annotation) if a is not type(None)]
    kinds = options or [annotation]
    if all(isinstance(k, str) for k in kinds):  # a Literal
        return "not-an-option"
    if bool in kinds:
        return "maybe"
    if int in kinds or float in kinds:
        return "lots"
    return None


def test_every_setting_refuses_a_bad_value_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.settings import Settings, load_settings

    checked = 0
    for name, field in Settings.model_fields.items():
        bad = _bad_value(field.annotation)
        if bad is None:
            continue
        variable = f"NASLOOP_{name.upper()}"
        monkeypatch.setenv(variable, bad)
        with pytest.raises(SettingsError) as err:
            load_settings()
        message = str(err.value)
        assert "\n" not in message and message.startswith(f"{variable}="), message
        monkeypatch.delenv(variable)
        checked += 1
    assert checked >= 30  # all numeric, boolean and choice settings


@pytest.mark.parametrize(
    ("old", "new"),
    [("no_improver", "improver"), ("no_history", "memory"), ("no_reference", "reference")],
)
def test_the_old_negated_names_still_work_everywhere(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, old: str, new: str
) -> None:
    """NASLOOP_NO_X, a Studio context's (or a saved run's) no_x, and the old --no-x flags (or
    --no-history) all switch the positive setting off; the new name wins where both are given;
    the old name is never written back; no flag is a double negative."""
    from agent.run import build_parser, setting_flags
    from agent.archive.paths import reopen, save_settings
    from agent.settings import Settings, load_settings

    assert getattr(load_settings(), new) is True
    monkeypatch.setenv(f"NASLOOP_{old.upper()}", "1")
    assert getattr(load_settings(), new) is False
    assert getattr(load_settings(**{new: True}), new) is True  # the new name wins
    monkeypatch.delenv(f"NASLOOP_{old.upper()}")
    assert getattr(Settings.model_validate({old: True}), new) is False  # a Studio context
    assert getattr(Settings.model_validate({old: False}), new) is True
    (tmp_path / "settings.json").write_text(json.dumps({old: True}))  # a run saved before
    reopened = reopen(tmp_path)
    assert getattr(reopened, new) is False
    save_settings(reopened, tmp_path / "again")
    saved = json.loads((tmp_path / "again" / "settings.json").read_text())
    assert old not in saved and saved[new] is False
    flag = "--no-history" if old == "no_history" else f"--no-{new}"
    assert setting_flags(build_parser().parse_args([flag])) == {new: False}
    assert setting_flags(build_parser().parse_args([f"--{new}"])) == {new: True}
    assert "--no-no-" not in build_parser().format_help()


def test_every_flag_of_agent_run_is_described_and_grouped() -> None:
    from agent.run import GROUPS, build_parser

    parser = build_parser()
    titles = [group.title for group in parser._action_groups]
    assert all(title in titles for title in ["LLM", "search", "sandbox", "training", "limits"])
    assert "results" in titles
    for action in parser._actions:
        assert action.help and action.help.strip() and not action.help.startswith("None"), action
    assert sum(len(names) for names in GROUPS.values()) >= 50
