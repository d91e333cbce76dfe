"""A real ``gasworks serve`` and the system Chromium (Playwright), shared by a module.

No skip anywhere: without Chromium the fixture raises (``make test`` installs it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from gasworks.testing.browser import Server, launch
from tests.dbtemplates import DIALECTS


@pytest.fixture
async def app(runtime: Any) -> Any:
    """The app ``gasworks serve`` runs: the API with the console on top."""
    from gasworks.console import create_web_app

    return create_web_app(runtime=runtime)


@pytest.fixture(scope="module", params=DIALECTS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    url = None
    tpl = None
    if request.param == "postgres":
        tpl = request.getfixturevalue("postgres_template")
        url = tpl.new()
    srv = Server(
        home=tmp_path_factory.mktemp("console"),
        database_url=url,
        # the demo model streams in paced chunks, so a test can watch a run stream
        extra_env={"GASWORKS_DEMO_STREAM_DELAY_MS": "40"},
    ).start()
    yield srv
    srv.stop()
    if tpl is not None and url is not None:
        tpl.drop(url)


@pytest.fixture(scope="module")
def browser(server: Server) -> Iterator[Any]:
    """Chromium, per server: Playwright's sync API runs an event loop in this thread, so it
    is closed before the next server (whose database setup runs its own loop) starts."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


def sign_in(browser: Any, server: Server, key: str | None = None, **ctx_kw: Any) -> Any:
    """A new browser context signed in with ``key`` (the admin key by default): its page."""
    context = browser.new_context(**{"viewport": {"width": 1280, "height": 900}, **ctx_kw})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(server.url + "/")
    page.get_by_label("API key").fill(key or server.key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(server.url + "/console")
    return page


@pytest.fixture(scope="module")
def admin_state(browser: Any, server: Server) -> dict[str, Any]:
    """The admin's signed-in browser state (its session cookie), signed in once per server."""
    page = sign_in(browser, server)
    state: dict[str, Any] = page.context.storage_state()
    page.context.close()
    return state


@pytest.fixture
def admin(browser: Any, server: Server, admin_state: dict[str, Any]) -> Iterator[Any]:
    """A fresh browser context holding the admin's session, on the overview."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, storage_state=admin_state
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(server.url + "/console")
    yield page
    context.close()
