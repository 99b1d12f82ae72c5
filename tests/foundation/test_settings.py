"""One `Settings`, read from the documented environment names, and nothing else reading them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import ValidationError

from aico.settings import Settings, worker_environment

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("aico", "cli", "serve_apps", "actors", "flows", "providers", "db")


def test_the_documented_environment_names_reach_their_sections(monkeypatch, tmp_path):
    monkeypatch.setenv("AICO_HOME", str(tmp_path))
    monkeypatch.setenv("AICO_MODELS", "inprocess")
    monkeypatch.setenv("AICO_MODEL_DEPLOYMENTS", '{"llm": {"num_gpus": 1}}')
    monkeypatch.setenv("AICO_PROVIDERS", '{"llm": {"kind": "openai"}}')
    monkeypatch.setenv("AICO_VOICE_POOL_SIZE", "5")
    monkeypatch.setenv("AICO_VOICE_TOKEN_TTL_S", "60")
    monkeypatch.setenv("AICO_SECRET_KEY", "secret-spec")
    monkeypatch.setenv("AICO_SIGNING_KEY", "signing-spec")
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")

    settings = Settings()

    assert settings.home == tmp_path
    assert settings.serving.mode == "inprocess"
    assert settings.serving.deployments == {"llm": {"num_gpus": 1}}
    assert settings.default_providers.defaults == {"llm": {"kind": "openai"}}
    assert (settings.voice.pool_size, settings.voice.token_ttl_s) == (5, 60)
    assert settings.security.secret_key == "secret-spec"
    assert settings.security.signing_key == "signing-spec"
    assert settings.ray_address == "ray://head:10001"


@pytest.mark.parametrize(("name", "value"), [
    ("AICO_MODELS", "sometimes"),
    ("AICO_PROVIDERS", "{not json"),
    ("AICO_VOICE_POOL_SIZE", "-1"),
])
def test_a_bad_value_stops_the_process_naming_the_variable(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises((ValidationError, ValueError)) as err:
        Settings()
    field = name.removeprefix("AICO_VOICE_").removeprefix("AICO_").lower()
    assert name in str(err.value) or field in str(err.value)


def test_workers_start_with_what_this_process_read(monkeypatch, tmp_path):
    monkeypatch.setenv("AICO_MODELS", "serve")
    monkeypatch.setenv("UNRELATED", "x")
    settings = Settings(home=tmp_path, port=8123)
    env = worker_environment(settings, database_url="postgresql:///aico")
    assert env["AICO_MODELS"] == "serve" and "UNRELATED" not in env
    assert env["AICO_HOME"] == str(tmp_path) and env["AICO_PORT"] == "8123"
    assert env["AICO_DATABASE_URL"] == "postgresql:///aico"


def _reads_an_aico_variable(node: ast.AST) -> bool:
    """`os.environ[...]`, `os.environ.get(...)`, `os.getenv(...)` with an AICO_* name, or a
    scan of `os.environ` that picks AICO_* names."""
    text = ast.unparse(node)
    return ("os.environ" in text or "getenv" in text) and "AICO_" in text


def test_nothing_outside_the_settings_module_reads_an_aico_variable():
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == ROOT / "aico" / "settings.py":
                continue
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, (ast.Call, ast.Subscript, ast.comprehension)) and \
                        _reads_an_aico_variable(node):
                    found.append(f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}")
    assert not found, "read AICO_* through aico.settings instead:\n" + "\n".join(found)


def test_workers_connect_as_the_application_role_without_the_owners_password(monkeypatch):
    from cli.main import serving_database_url

    owner = "postgresql://aico_owner:owner-pw@db.internal:5432/aico"
    url = serving_database_url(Settings(), owner)
    assert "owner-pw" not in url and "aico_owner" not in url
    assert url == "postgresql://aico_app@db.internal:5432/aico"
    monkeypatch.setenv("AICO_DATABASE_APP_URL", "postgresql://aico_app:app-pw@db.internal/aico")
    assert serving_database_url(Settings(), owner) == \
        "postgresql://aico_app:app-pw@db.internal/aico"
