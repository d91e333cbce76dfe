"""``gasworks serve`` for the documents browser tests: the same app (``create_web_app`` on a
runtime of the default domains) whose ingestion and search embed with the tests'
``FakeEmbedder`` (no model to load), which fails while ``$GASWORKS_HOME/embedder-down`` exists,
so a test can dead-letter a document, fix the cause and replay it from the console.

Usage: ``python tests/console/_serve_docs.py --port N`` with the server's environment."""

from __future__ import annotations

import sys
from pathlib import Path

from gasworks.errors import ProviderUnavailable
from gasworks.modeltypes import CallScope
from gasworks.retrieval.types import EmbedRequest, EmbedResult
from gasworks.testing import FakeEmbedder

DOWN = "embedder-down"


class SwitchableEmbedder(FakeEmbedder):
    def __init__(self, home: Path) -> None:
        super().__init__()
        self.home = home

    async def embed(self, scope: CallScope, req: EmbedRequest) -> EmbedResult:
        if (self.home / DOWN).exists():
            raise ProviderUnavailable("The test's embedding provider is down.")
        return await super().embed(scope, req)


def main() -> None:
    import uvicorn

    from gasworks.console import create_web_app
    from gasworks.retrieval.runtime import EMBEDDER_OVERRIDE
    from gasworks.settings import Settings
    from gasworks.wiring import build_runtime

    port = int(sys.argv[sys.argv.index("--port") + 1])
    settings = Settings()
    rt = build_runtime(settings)
    # search's embedder; the documents pipeline takes retrieval's (the wiring's join)
    rt.services[EMBEDDER_OVERRIDE] = SwitchableEmbedder(settings.home)
    uvicorn.run(create_web_app(runtime=rt), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
