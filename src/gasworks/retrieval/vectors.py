"""The argument checks every ``VectorIndex`` backend applies, in one place: a vector must have
its space's dimensions and finite values (``VALIDATION_FAILED`` otherwise) and is stored and
searched as a unit vector (cosine is then a dot product); in one upsert batch the last record
of a chunk id wins; a search with ``k <= 0`` or no allowed source finds nothing."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
import numpy.typing as npt

from gasworks.errors import ValidationFailed
from gasworks.retrieval.types import Space, VectorRecord

F32 = npt.NDArray[np.float32]


def normalized(vector: Sequence[float], dims: int) -> F32:
    """``vector`` as float32 of length one (a zero vector stays zero)."""
    v = np.asarray(vector, dtype=np.float32)
    if v.ndim != 1 or v.shape[0] != dims:
        raise ValidationFailed(
            f"Vector has {v.shape[0] if v.ndim == 1 else v.shape} dimensions; this space "
            f"expects {dims}.",
            details={"expected": dims, "got": int(v.shape[0]) if v.ndim == 1 else None},
        )
    norm = float(np.linalg.norm(v))
    if not np.isfinite(norm):
        raise ValidationFailed("Vector contains NaN or infinite values.")
    return v / norm if norm > 0 else v


def upsert_batch(space: Space, records: Sequence[VectorRecord]) -> dict[str, tuple[str, F32]]:
    """Chunk id → (source id, unit vector) of an upsert batch, every vector checked first
    (nothing is written when one is refused); the last record of a chunk id wins."""
    return {r.chunk_id: (r.source_id, normalized(r.vector, space.dimensions)) for r in records}


def search_query(
    space: Space, query: Sequence[float], allowed_sources: Collection[str], k: int
) -> F32 | None:
    """The checked unit query vector, or ``None`` when the search can find nothing."""
    q = normalized(query, space.dimensions)
    return q if k > 0 and allowed_sources else None
