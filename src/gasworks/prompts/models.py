"""Model id normalization used for scope keys.

The model registry owns canonical ids (aliases, Bedrock provider ids and inference-profile
prefixes all resolve to one registry id). Each ``PromptService`` builds its own
:func:`model_id_normalizer` over its runtime's registry (no process-wide state: two runtimes
never see each other's registry); ids the registry does not know (a pointer may be set up
before its model is registered) fall back to :func:`local_normalize`.
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


Normalizer = Callable[[str], str]


def model_id_normalizer(registry: _Registry | None) -> Normalizer:
    """A cached normalizer over ``registry`` (the local rules alone without one)."""
    return lru_cache(maxsize=4096)(
        registry_normalizer(registry) if registry is not None else local_normalize
    )
