"""Model id normalization used for scope keys (swappable).

The model registry owns canonical ids (aliases, Bedrock provider ids and inference-profile
prefixes all resolve to one registry id). The prompts startup hook installs
:func:`registry_normalizer` over the runtime's registry; ids the registry does not know (a
pointer may be set up before its model is registered) fall back to :func:`local_normalize`.
:func:`set_model_normalizer` swaps the function (e.g. in tests).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Protocol

from gasworks.errors import GasworksError

_REGION = re.compile(r"^(?:us|eu|apac|us-gov|ca|jp|au|global)\.(?=[a-z0-9-]+\.)")


def local_normalize(model: str) -> str:
    """``bedrock/us.anthropic.claude-3-5-sonnet`` → ``anthropic.claude-3-5-sonnet``.

    Strips whitespace, a ``bedrock/`` provider prefix, an ARN down to its model id and a
    cross-region inference-profile prefix (``us.``, ``eu.``, ``apac.``, …).
    """
    m = model.strip()
    if m.startswith("arn:") and "/" in m:
        m = m.rsplit("/", 1)[1]
    if m.lower().startswith("bedrock/"):
        m = m[len("bedrock/") :]
    return _REGION.sub("", m)


class _Registry(Protocol):
    def resolve(self, model_id: str | None) -> Any: ...


def registry_normalizer(registry: _Registry) -> Callable[[str], str]:
    """Registry id of ``model`` (as given, then locally normalized), else the local form."""

    def normalize(model: str) -> str:
        local = local_normalize(model)
        for candidate in (model.strip(), local):
            try:
                return str(registry.resolve(candidate).id)
            except GasworksError:
                continue
        return local

    return normalize


_normalizer: Callable[[str], str] = local_normalize


def set_model_normalizer(fn: Callable[[str], str]) -> None:
    global _normalizer
    _normalizer = fn
    normalize_model_id.cache_clear()


@lru_cache(maxsize=4096)
def normalize_model_id(model: str) -> str:
    return _normalizer(model)
