"""Model id normalization used for scope keys (swappable).

The model registry (``gasworks.llm.registry``, built on another branch) owns the canonical
normalization (Bedrock prefixes, aliases). Until it is on ``main`` this module applies a small
local rule set; when the registry exposes ``normalize_model_id`` it is picked up automatically,
and :func:`set_model_normalizer` swaps it explicitly (e.g. in tests).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from functools import lru_cache

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


def _registry_normalizer() -> Callable[[str], str] | None:
    try:
        mod = importlib.import_module("gasworks.llm.registry")
    except ImportError:
        return None
    fn = getattr(mod, "normalize_model_id", None)
    return fn if callable(fn) else None


_normalizer: Callable[[str], str] = _registry_normalizer() or local_normalize


def set_model_normalizer(fn: Callable[[str], str]) -> None:
    global _normalizer
    _normalizer = fn
    normalize_model_id.cache_clear()


@lru_cache(maxsize=4096)
def normalize_model_id(model: str) -> str:
    return _normalizer(model)
