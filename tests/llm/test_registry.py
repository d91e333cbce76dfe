from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from gasworks.errors import ConfigurationError, ModelNotFound
from gasworks.llm.registry import ModelEntry, ModelRegistry, build_registry, catalog_entries
from gasworks.modeltypes import Usage
from tests.llm.conftest import models_file

SONNET_45 = "anthropic.claude-sonnet-4-5-20250929-v1:0"


def registry(**kw: object) -> ModelRegistry:
    return build_registry(default_model="demo", models_file=None, region=None, **kw)  # type: ignore[arg-type]


def test_catalog_has_every_provider_and_exact_prices() -> None:
    entries = catalog_entries()
    providers = {e.provider.value for e in entries}
    assert providers == {"demo", "openai", "anthropic", "bedrock", "local"}
    assert any(e.capabilities.embeddings and e.id.startswith("bedrock/titan") for e in entries)
    assert any(e.capabilities.embeddings and "cohere" in e.id for e in entries)
    gpt4o = next(e for e in entries if e.id == "gpt-4o")
    assert gpt4o.input_per_1k == Decimal("0.0025")
    assert isinstance(gpt4o.output_per_1k, Decimal)


def test_default_model_and_unknown_model_named_in_error() -> None:
    r = registry()
    assert r.resolve(None).id == "demo"
    with pytest.raises(ModelNotFound) as info:
        r.resolve("gpt-9-ultra")
    assert "gpt-9-ultra" in info.value.message
    assert info.value.details == {"model": "gpt-9-ultra"}
    assert info.value.status == 404


def test_disabled_model_is_not_found_never_replaced() -> None:
    r = registry()
    r.set_overlays({"gpt-4o": ({}, False)})
    with pytest.raises(ModelNotFound):
        r.resolve("gpt-4o")
    assert r.get("gpt-4o", include_disabled=True).enabled is False


def test_bedrock_profile_prefix_maps_to_base_entry_at_its_own_price() -> None:
    r = registry()
    us = r.resolve(f"us.{SONNET_45}")
    assert us.id == "bedrock/claude-sonnet-4-5"
    assert us.provider_model_id == f"us.{SONNET_45}"
    assert (us.input_per_1k, us.output_per_1k) == (Decimal("0.0033"), Decimal("0.0165"))
    assert us.price_key == "us"
    glob = r.resolve(f"global.{SONNET_45}")
    assert glob.id == us.id
    assert (glob.input_per_1k, glob.price_key) == (Decimal("0.003"), None)
    # the same usage costs 10 % more through the US geographic profile
    usage = Usage(input_tokens=1000, output_tokens=1000)
    assert us.cost(usage) == Decimal("0.0198")
    assert glob.cost(usage) == Decimal("0.018")
    # the registry id and the provider id without prefix resolve to the same entry
    assert r.resolve(SONNET_45).id == r.resolve("bedrock/claude-sonnet-4-5").id == us.id


def test_profile_not_offered_is_not_found() -> None:
    r = registry()
    with pytest.raises(ModelNotFound) as info:
        r.resolve("eu.anthropic.claude-opus-4-1-20250805-v1:0")
    assert info.value.details["profile"] == "eu"
    with pytest.raises(ModelNotFound):
        r.resolve("us.gpt-4o")  # prefixes only apply to Bedrock entries


def test_unprefixed_bedrock_id_uses_configured_region_price() -> None:
    r = build_registry(default_model="demo", models_file=None, region="us")
    assert r.resolve("bedrock/claude-haiku-4-5").input_per_1k == Decimal("0.0011")
    r2 = build_registry(default_model="demo", models_file=None, region="eu-central-1")
    assert r2.resolve("bedrock/claude-haiku-4-5").input_per_1k == Decimal("0.001")


def test_cost_uses_cached_input_price() -> None:
    m = registry().resolve("gpt-4o")
    cost = m.cost(Usage(input_tokens=2000, output_tokens=500, cached_input_tokens=1000))
    # 1000 uncached * 0.0025 + 1000 cached * 0.00125 + 500 * 0.01, per 1K
    assert cost == Decimal("0.00875")


def test_models_file_adds_and_overrides(tmp_path: Path) -> None:
    path = models_file(
        tmp_path,
        [
            {"id": "gpt-4o", "provider": "openai", "input_per_1k": 0.003, "output_per_1k": 0.011},
            {
                "id": "local-llama",
                "provider": "openai_compatible",
                "provider_model_id": "llama3.1:8b",
                "base_url": "http://127.0.0.1:11434/v1",
                "aliases": ["llama"],
            },
        ],
    )
    r = build_registry(default_model="local-llama", models_file=path, region=None)
    assert r.resolve("gpt-4o").input_per_1k == Decimal("0.003")  # YAML float kept exact
    assert r.resolve(None).provider_model_id == "llama3.1:8b"
    assert r.resolve("llama").id == "local-llama"


def test_invalid_models_file_names_the_entry(tmp_path: Path) -> None:
    path = models_file(tmp_path, [{"id": "x", "provider": "nope"}])
    with pytest.raises(ConfigurationError) as info:
        build_registry(default_model="demo", models_file=path, region=None)
    assert "'x'" in info.value.message
    with pytest.raises(ConfigurationError):
        build_registry(default_model="demo", models_file=tmp_path / "missing.yaml", region=None)


def test_overlay_is_a_patch_on_the_catalog_entry() -> None:
    r = registry()
    r.set_overlays({"gpt-4o": ({"output_per_1k": "0.02"}, True)})
    e = r.get("gpt-4o")
    assert e.output_per_1k == Decimal("0.02")
    assert e.input_per_1k == Decimal("0.0025")  # untouched fields keep the catalog value


def test_resolution_is_cached_and_invalidated_on_change() -> None:
    r = registry()
    assert r.resolve("gpt-4o") is r.resolve("gpt-4o")
    before = r.resolve("gpt-4o")
    r.set_overlays({"gpt-4o": ({"input_per_1k": "0.1"}, True)})
    assert r.resolve("gpt-4o") is not before
    assert r.resolve("gpt-4o").input_per_1k == Decimal("0.1")


def test_entry_rejects_self_fallback() -> None:
    with pytest.raises(ValueError):
        ModelEntry.model_validate({"id": "a", "provider": "demo", "fallbacks": ["a"]})


def test_cache_reads_and_writes_have_their_own_rates() -> None:
    m = registry().resolve("us.anthropic.claude-sonnet-4-5-20250929-v1:0")
    usage = Usage(
        input_tokens=3000, cached_input_tokens=1000, cache_write_input_tokens=1000, output_tokens=0
    )
    # 1000 plain * 0.0033 + 1000 read * 0.00033 + 1000 written * 0.004125 (1.25x), per 1K
    assert m.cost(usage) == Decimal("0.007755")
    # models without a cache-write price charge writes as plain input
    assert registry().resolve("gpt-4o").cache_write_per_1k == Decimal("0.0025")
