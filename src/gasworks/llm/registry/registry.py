"""The model registry: catalog + deployment file + API overlays, resolved in O(1).

Three layers, later ones winning per id:

1. the built-in catalog shipped in the package (``catalog.yaml``);
2. the deployment's file named by ``GASWORKS_MODELS_FILE`` (same format);
3. overlays managed through the API, stored in the ``model_overlays`` table. An overlay on an
   existing id is a *patch* (only the changed fields), so a catalog price update in a new
   release still reaches fields the operator did not override; an overlay on a new id is a
   full entry.

Lookups go through a dict of every id, alias and (for Bedrock) provider id; the resolution of a
requested id (inference-profile prefix, region price) is cached in another dict, so the hot path
is two dict hits. A disabled or unknown id raises ``MODEL_NOT_FOUND`` naming the id — there is
never a silent fallback to another model.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gasworks.errors import CapabilityNotSupported, ConfigurationError, ModelNotFound
from gasworks.llm.registry.resolved import ResolvedModel
from gasworks.modelcard import ModelEntry, ModelKind, ProviderName
from gasworks.observability.logging import get_logger
from gasworks.yamlsafe import first_line, load_yaml

#: Bedrock cross-region inference-profile prefixes (``us.anthropic.claude-…``).
PROFILE_PREFIXES = frozenset({"us", "eu", "apac", "global", "us-gov", "jp", "au", "ca"})
_MAX_RESOLVED = 4096
log = get_logger("gasworks.llm.registry")


def load_yaml_entries(text: str, source: str) -> list[dict[str, Any]]:
    """The raw entries of a models YAML document (``models: [...]`` or a bare list)."""
    try:
        doc = load_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigurationError(
            f"Models file {source} is not valid YAML: {first_line(exc)}", details={"file": source}
        ) from exc
    items = doc.get("models") if isinstance(doc, dict) else doc
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ConfigurationError(
            f"Models file {source} must hold a list of entries under 'models:'.",
            details={"file": source},
        )
    return items


def parse_entries(items: Iterable[dict[str, Any]], source: str) -> list[ModelEntry]:
    out = []
    for i, item in enumerate(items):
        try:
            out.append(ModelEntry.model_validate(item))
        except ValidationError as exc:
            name = item.get("id", f"#{i}")
            raise ConfigurationError(
                f"Model entry {name!r} in {source} is invalid: {exc.errors()[0]['msg']} "
                f"at {'.'.join(str(p) for p in exc.errors()[0]['loc'])}",
                details={"file": source, "model": name},
            ) from exc
    return out


def catalog_entries() -> list[ModelEntry]:
    """The built-in catalog shipped with the package."""
    text = resources.files("gasworks.llm.registry").joinpath("catalog.yaml").read_text("utf-8")
    return parse_entries(load_yaml_entries(text, "catalog.yaml"), "catalog.yaml")


def file_entries(path: Path) -> list[ModelEntry]:
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigurationError(
            f"Cannot read GASWORKS_MODELS_FILE {path}: {exc.strerror}", details={"file": str(path)}
        ) from exc
    return parse_entries(load_yaml_entries(text, str(path)), str(path))


def apply_overlay(base: ModelEntry | None, patch: Mapping[str, Any], enabled: bool) -> ModelEntry:
    """An entry with an API overlay applied (a patch on ``base``, or a whole new entry)."""
    data = base.model_dump(mode="json", exclude_unset=False) if base is not None else {}
    data.update(patch)
    data["enabled"] = enabled
    return ModelEntry.model_validate(data)


class ModelRegistry:
    """Every model this deployment knows, by id. Thread-safe for readers (dicts swapped whole)."""

    def __init__(
        self,
        base: Iterable[ModelEntry],
        *,
        default_model: str = "demo",
        default_embedding_model: str = "local/all-minilm-l6-v2",
        region: str | None = None,
    ) -> None:
        self.default_model = default_model
        self.default_embedding_model = default_embedding_model
        #: AWS region whose prices apply to Bedrock ids without a profile prefix
        self.region = region
        self._base: dict[str, ModelEntry] = {}
        for e in base:
            self._base[e.id] = e
        self._overlays: dict[str, tuple[dict[str, Any], bool]] = {}
        self._entries: dict[str, ModelEntry] = {}
        self._index: dict[str, ModelEntry] = {}
        self._resolved: dict[str, ResolvedModel] = {}
        self._rebuild()

    # --- building ---------------------------------------------------------------------------

    def base_entry(self, model_id: str) -> ModelEntry | None:
        """The catalog/file entry of an id, without API overlays."""
        return self._base.get(model_id)

    @property
    def overlays(self) -> dict[str, tuple[dict[str, Any], bool]]:
        return self._overlays

    def set_overlays(self, overlays: Mapping[str, tuple[dict[str, Any], bool]]) -> None:
        """Replace every API overlay (``id -> (patch, enabled)``) and rebuild the indexes."""
        self._overlays = dict(overlays)
        self._rebuild()

    def _rebuild(self) -> None:
        entries = dict(self._base)
        for model_id, (patch, enabled) in self._overlays.items():
            try:
                entries[model_id] = apply_overlay(self._base.get(model_id), patch, enabled)
            except ValidationError as exc:
                # an overlay that no longer validates against a newer catalog must not take
                # the whole registry down: the entry keeps its catalog form, loudly
                log.error("models.overlay_invalid", model=model_id, error=str(exc.errors()[0]))
                continue
        index: dict[str, ModelEntry] = {}
        for e in entries.values():
            index[e.id] = e
        for e in entries.values():
            names = list(e.aliases)
            if e.provider is ProviderName.BEDROCK and e.provider_model_id:
                names.append(e.provider_model_id)
            for name in names:
                index.setdefault(name, e)
        # swap whole dicts: readers in other threads see either the old or the new state
        self._entries, self._index, self._resolved = entries, index, {}

    # --- reading ----------------------------------------------------------------------------

    def entries(self, *, include_disabled: bool = False) -> list[ModelEntry]:
        return [e for e in self._entries.values() if include_disabled or e.enabled]

    def get(self, model_id: str, *, include_disabled: bool = False) -> ModelEntry:
        """The entry named by an id, an alias or a Bedrock profile id (``us.…``)."""
        e = self._index.get(model_id)
        if e is None:
            head, dot, rest = model_id.partition(".")
            base = self._index.get(rest) if dot and head in PROFILE_PREFIXES else None
            if base is not None and base.provider is ProviderName.BEDROCK:
                e = base
        if e is None or (not e.enabled and not include_disabled):
            raise _not_found(model_id)
        return e

    def resolve(self, model_id: str | None) -> ResolvedModel:
        """The model to call for ``model_id`` (default model when None). O(1) when cached."""
        key = model_id or self.default_model
        hit = self._resolved.get(key)
        if hit is not None:
            return hit
        resolved = self._resolve_uncached(key)
        if len(self._resolved) >= _MAX_RESOLVED:
            self._resolved.clear()
        self._resolved[key] = resolved
        return resolved

    def resolve_embedding(self, model_id: str | None) -> ResolvedModel:
        """The embedding model to call for ``model_id`` (the default embedding model when
        None); a chat model is refused (``MODEL_CAPABILITY_UNSUPPORTED``)."""
        model = self.resolve(model_id or self.default_embedding_model)
        if model.entry.kind is not ModelKind.EMBEDDING:
            raise CapabilityNotSupported(
                f"Model '{model.id}' is not an embedding model. List the embedding models "
                "with GET /v1/models (kind 'embedding').",
                details={"model": model.id, "param": "model", "capability": "embeddings"},
            )
        return model

    def _resolve_uncached(self, key: str) -> ResolvedModel:
        entry = self._index.get(key)
        profile: str | None = None
        if entry is None:
            head, dot, rest = key.partition(".")
            if dot and head in PROFILE_PREFIXES:
                candidate = self._index.get(rest)
                if candidate is not None and candidate.provider is ProviderName.BEDROCK:
                    allowed = candidate.inference_profiles
                    if allowed is not None and head not in allowed:
                        raise ModelNotFound(
                            f"Model '{key}' is not offered through the '{head}' inference "
                            f"profile (available: {', '.join(allowed) or 'none'}).",
                            details={"model": key, "profile": head},
                        )
                    entry, profile = candidate, head
        if entry is None or not entry.enabled:
            raise _not_found(key)
        wire = entry.wire_id
        if profile is not None:
            wire = f"{profile}.{wire}"
        price_key = profile
        if price_key is None and entry.provider is ProviderName.BEDROCK:
            price_key = self.region
        override = entry.region_prices.get(price_key) if price_key else None
        prices = override if override is not None else entry
        inp, out = prices.input_per_1k, prices.output_per_1k
        cached, written = prices.cached_input_per_1k, prices.cache_write_per_1k
        if override is None:
            price_key = None
        return ResolvedModel(
            id=entry.id,
            requested=key,
            entry=entry,
            provider_model_id=wire,
            price_key=price_key,
            input_per_1k=inp,
            output_per_1k=out,
            cached_input_per_1k=inp if cached is None else cached,
            cache_write_per_1k=inp if written is None else written,
        )


def _not_found(model_id: str) -> ModelNotFound:
    return ModelNotFound(
        f"Model '{model_id}' is not in the registry or is disabled. "
        "List the available models with GET /v1/models or `gasworks models list`.",
        details={"model": model_id},
    )


def build_registry(
    *,
    default_model: str,
    models_file: Path | None,
    region: str | None,
    extra: Iterable[ModelEntry] = (),
    default_embedding_model: str = "local/all-minilm-l6-v2",
) -> ModelRegistry:
    """Catalog, then the deployment file, then ``extra`` (tests), later ids winning."""
    base = catalog_entries()
    if models_file is not None:
        base += file_entries(models_file)
    base += list(extra)
    return ModelRegistry(
        base,
        default_model=default_model,
        default_embedding_model=default_embedding_model,
        region=region,
    )
