"""Demo workflows shipped as package data: a chatbot with memory, an intent-routed support
assistant, a slot-filling onboarding flow and retrieval-augmented Q&A over the caller's
documents. ``gasworks workflows demo install`` publishes them and installs the Q&A demo's small
corpus (``handbook/``, a fictional staff handbook written for gasworks) into the collection
``demo-handbook`` through the documents pipeline."""

from __future__ import annotations

from collections.abc import AsyncIterator
from importlib import resources
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from gasworks.errors import CollectionNotFound
from gasworks.tenancy.context import TenantContext
from gasworks.workflows.definition import parse_document
from gasworks.workflows.schemas import PublishOut, ShareIn

if TYPE_CHECKING:
    from gasworks.documents.schemas import CollectionOut, UploadResult
    from gasworks.documents.service import DocumentService

DEMOS = ("chatbot", "support", "onboarding", "rag")
#: the collection the retrieval demo's corpus goes into (readable by the whole tenant)
CORPUS_COLLECTION = "demo-handbook"


def demo_text(name: str) -> str:
    return (resources.files(__name__) / f"{name}.yaml").read_text(encoding="utf-8")


def demo_document(name: str) -> dict[str, Any]:
    return parse_document(demo_text(name))


def corpus_files() -> list[tuple[str, bytes]]:
    """The corpus as (file name, bytes), in name order."""
    folder = resources.files(__name__) / "handbook"
    files = [f for f in folder.iterdir() if f.is_file() and f.name.endswith(".md")]
    return [(f.name, f.read_bytes()) for f in sorted(files, key=lambda f: f.name)]


async def install_demos(session: AsyncSession, ctx: TenantContext) -> list[PublishOut]:
    """Publish every demo (idempotent: an unchanged demo is not republished) and share it with
    the whole tenant."""
    from gasworks.workflows import service

    out = []
    for name in DEMOS:
        published = await service.publish(session, ctx, demo_document(name))
        await service.share(session, ctx, published.workflow.slug, ShareIn(kind="tenant"))
        out.append(published)
    return out


async def install_corpus(
    documents: DocumentService, ctx: TenantContext
) -> tuple[CollectionOut, list[UploadResult]]:
    """Create ``demo-handbook`` (granted to the whole tenant) and upload the corpus into it.
    Idempotent: the same bytes are the same documents, so a second install queues nothing.
    The documents become searchable once a worker (``gasworks serve`` or ``gasworks
    worker``) has run them through the pipeline."""
    from gasworks.documents.schemas import CollectionIn, GrantIn

    try:
        collection = await documents.get_collection(ctx, CORPUS_COLLECTION)
    except CollectionNotFound:
        collection = await documents.create_collection(
            ctx,
            CollectionIn(
                name=CORPUS_COLLECTION,
                description="The retrieval demo's corpus (gasworks workflows demo install).",
            ),
        )
    await documents.grant(ctx, CORPUS_COLLECTION, GrantIn(kind="tenant"))
    results = []
    for name, data in corpus_files():
        results.append(
            await documents.upload(ctx, name, _once(data), collections=[CORPUS_COLLECTION])
        )
    return collection, results


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
