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

    from agent.llm_server.settings import EmbeddedSettings
    from agent.settings import Settings

    text = (Path(__file__).resolve().parents[2] / ".env.example").read_text()
    names = [f"NASLOOP_{n.upper()}" for n in Settings.model_fields]
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
