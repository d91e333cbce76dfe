"""YAML anchors and aliases are refused in every YAML input: an alias bomb of a few hundred
bytes would otherwise expand past every size limit checked on the text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gasworks.cli.prompts import load_prompt_file
from gasworks.errors import ConfigurationError, ValidationFailed
from gasworks.llm.credentials import Credentials
from gasworks.llm.registry.registry import file_entries
from gasworks.settings import Settings
from gasworks.yamlsafe import YamlAliasRefused, dump_yaml, load_yaml
from tests.conftest import auth


def bomb(levels: int = 5) -> str:
    """A valid workflow whose state default holds 10^(levels+1) strings through aliases."""
    lines = [
        "id: bomb",
        "nodes: [{id: f, type: Format, config: {template: x}}]",
        "state:",
        "  x:",
        "    type: array",
        "    default:",
        "    - &a [" + ",".join(['"lol"'] * 10) + "]",
    ]
    prev = "a"
    for name in "bcdefghij"[:levels]:
        lines.append(f"    - &{name} [" + ",".join([f"*{prev}"] * 10) + "]")
        prev = name
    return "\n".join(lines) + "\n"


BOMB = bomb()


def test_the_bomb_is_small_and_would_expand_past_the_document_limit() -> None:
    assert len(BOMB.encode()) < 500
    assert len(json.dumps(yaml.safe_load(BOMB))) > 1_000_000  # what publishing used to store


@pytest.mark.parametrize(
    "text",
    [BOMB, "a: &x 1\n", "a: &x [1]\nb: 2\n", "a: !!str &x v\n", "base: {k: 1}\nb:\n  <<: *base\n"],
)
def test_anchors_and_aliases_are_refused(text: str) -> None:
    with pytest.raises(YamlAliasRefused) as e:
        load_yaml(text)
    assert e.value.problem_mark is not None  # names the line and column


def test_documents_without_aliases_load_as_before() -> None:
    text = "id: w\nnodes: [{id: a, type: Format}]\nnote: 'an & and a * in a string'\n"
    assert load_yaml(text) == yaml.safe_load(text)


def test_what_gasworks_writes_it_reads_back_even_with_shared_values() -> None:
    caps = {"streaming": True, "tools": False}
    data = {"models": [{"id": "a", "capabilities": caps}, {"id": "b", "capabilities": caps}]}
    assert "&id001" in yaml.safe_dump(data)  # PyYAML's own dumper writes an anchor here
    assert load_yaml(dump_yaml(data)) == data


async def test_publishing_an_alias_bomb_is_a_validation_error_and_stores_nothing(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    h = {**auth(admin_key), "content-type": "application/yaml"}
    for path in ("/api/workflows", "/api/workflows/validate"):
        r = await client.post(path, content=BOMB, headers=h)
        assert r.status_code == 422, r.text
        err = r.json()["error"]
        assert err["code"] == "WORKFLOW_INVALID"
        assert [i["code"] for i in err["details"]["issues"]] == ["YAML_ALIAS"]
        assert "line 7" in err["details"]["issues"][0]["message"]
    r = await client.get("/api/workflows", headers=auth(admin_key))
    assert r.status_code == 200 and r.json() == []
    plain = BOMB.replace("&a ", "").split("    - &b")[0]  # the same document without aliases
    r = await client.post("/api/workflows", content=plain, headers=h)
    assert r.status_code in (200, 201), r.text


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


ALIASED = "a: &k sk-one\nb: *k\n"


def test_models_secrets_and_config_files_refuse_aliases(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = _write(tmp_path, "models.yaml", "models:\n- &m {id: x, provider: demo}\n- *m\n")
    with pytest.raises(ConfigurationError, match="anchors and aliases"):
        file_entries(models)
    with pytest.raises(ConfigurationError, match="anchors and aliases"):
        Credentials(_write(tmp_path, "secrets.yaml", ALIASED))
    cfg = _write(tmp_path, "gasworks.yaml", "log_level: &l DEBUG\n")
    monkeypatch.setenv("GASWORKS_CONFIG_FILE", str(cfg))
    with pytest.raises(ConfigurationError, match="anchors and aliases") as e:
        Settings()
    assert e.value.details == {"config_file": str(cfg)}


def test_cli_prompt_files_refuse_aliases(tmp_path: Path) -> None:
    p = _write(tmp_path, "p.yaml", "system: &s Be brief.\nuser: *s\n")
    with pytest.raises(ValidationFailed, match="anchors and aliases"):
        load_prompt_file(p)
    ok: Any = load_prompt_file(_write(tmp_path, "q.yaml", "system: Be brief.\n"))
    assert ok[1].system == "Be brief."
