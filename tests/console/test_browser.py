"""The web console in a real Chromium against a real ``gasworks serve`` (both databases).

Each test is what an operator does: sign in, trip and reset a breaker, deploy and roll back a
prompt (with a conflict from a second tab), publish and run a workflow while it streams, set a
budget and meet the refusal, sign out. A viewer sees and does no more than the API allows;
a cross-site form post is refused.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gasworks.console.pages.workflows import EXAMPLE
from gasworks.testing.browser import Server
from tests.console.conftest import sign_in

#: a real server and browser per database: slower than the rest (not in `make test-fast`);
#: the first test of a module also waits for the server and Chromium to start
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

#: the publish page's own example, under another id
WORKFLOW = EXAMPLE.replace("id: hello", "id: console-hello")


def _expect(page: Any) -> Any:
    from playwright.sync_api import expect

    return expect


def breaker_state(server: Server, model: str) -> str:
    rows = server.api("GET", "/api/breakers?limit=500").json()
    return next(b["state"] for b in rows if b["breaker"] == model)


def test_sign_in_session_cookie_and_sign_out(browser: Any, server: Server) -> None:
    admin = sign_in(browser, server)  # its own session: this test ends it
    expect = _expect(admin)
    expect(admin.get_by_role("heading", name="Overview")).to_be_visible()
    cookie = next(c for c in admin.context.cookies() if c["name"] == "gw_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    # nothing a script can read holds the key or the session
    stored = admin.evaluate(
        "() => document.cookie + JSON.stringify(localStorage) + JSON.stringify(sessionStorage)"
    )
    assert server.key not in stored and cookie["value"] not in stored
    # the signed-in browser can use the API docs' routes and GraphQL with its cookie
    me = admin.evaluate(
        "async () => (await fetch('/graphql', {method: 'POST', headers: {'content-type': "
        "'application/json'}, body: JSON.stringify({query: '{ __typename }'})})).status"
    )
    assert me == 200
    assert admin.evaluate("async () => (await fetch('/api/breakers')).status") == 200

    admin.get_by_role("button", name="Sign out").click()
    admin.wait_for_url("**/console/sign-in")
    admin.goto(server.url + "/console/models")
    expect(admin.get_by_label("API key")).to_be_visible()  # sent back to sign in
    # the old cookie opens nothing any more (the session row is gone)
    r = httpx.get(server.url + "/api/breakers", cookies={"gw_session": cookie["value"]})
    assert r.status_code == 401
    admin.context.close()


def test_wrong_key_is_refused(browser: Any, server: Server) -> None:
    page = browser.new_page()
    page.goto(server.url + "/console")
    page.get_by_label("API key").fill("gw_notakey_000000000000000000000000000000000000000000")
    page.get_by_role("button", name="Sign in").click()
    _expect(page)(page.get_by_role("alert")).to_contain_text("not valid")
    page.close()


def test_trip_and_reset_a_breaker(admin: Any, server: Server) -> None:
    expect = _expect(admin)
    admin.goto(server.url + "/console/models?q=demo")
    row = admin.locator("tr", has=admin.get_by_text("demo", exact=True))
    row.get_by_text("Trip / reset / disable").click()
    row.get_by_label("Breaker action for demo").select_option("trip")
    row.get_by_label("Reason for the breaker action on demo").fill("provider incident 42")
    row.get_by_role("button", name="Apply to demo").click()
    expect(admin.locator("#flash")).to_contain_text("forced open")
    assert breaker_state(server, "demo") == "forced_open"
    expect(admin.locator("#events")).to_contain_text("provider incident 42")

    row = admin.locator("tr", has=admin.get_by_text("demo", exact=True))
    row.get_by_text("Trip / reset / disable").click()
    row.get_by_label("Breaker action for demo").select_option("reset")
    row.get_by_label("Reason for the breaker action on demo").fill("resolved")
    row.get_by_role("button", name="Apply to demo").click()
    expect(admin.locator("#flash")).to_contain_text("closed")
    assert breaker_state(server, "demo") == "closed"


def test_deploy_conflict_from_a_second_tab_and_roll_back(admin: Any, server: Server) -> None:
    expect = _expect(admin)
    ids = []
    for text in ("Answer briefly.", "Answer briefly and kindly."):
        r = server.api(
            "POST", "/api/prompts/versions", json={"name": "greet", "content": {"system": text}}
        )
        assert r.status_code in (200, 201), r.text
        ids.append(r.json()["id"])
    v1, v2 = ids
    admin.goto(server.url + "/console/prompts")
    form = admin.locator("form", has=admin.get_by_role("button", name="Deploy"))
    form.get_by_label("Model").fill("demo")
    form.get_by_label("Version").select_option(v1)
    form.get_by_label("Reason").fill("first deploy")
    form.get_by_role("button", name="Deploy").click()
    expect(admin.locator("#flash")).to_contain_text("Deployed")
    expect(admin.locator("[data-pointer-version]")).to_have_text("1")

    # a second tab reads the same pointer (version 1), then the first tab deploys v2
    other = admin.context.new_page()
    other.goto(admin.url)
    admin.get_by_label("Version to deploy").select_option(v2)
    admin.get_by_label("Reason for deploying").fill("kinder")
    admin.get_by_role("button", name="Deploy", exact=True).click()
    expect(admin.locator("[data-pointer-version]")).to_have_text("2")

    # the second tab's deploy is a conflict: shown with the current state and a retry
    other.get_by_label("Version to deploy").select_option(v1)
    other.get_by_role("button", name="Deploy", exact=True).click()
    conflict = other.locator("#conflict")
    expect(conflict).to_contain_text("PROMPT_POINTER_CONFLICT")
    expect(conflict).to_contain_text("pointer version 2")
    other.get_by_role("button", name="Retry deploy against version 2").click()
    expect(other.locator("[data-pointer-version]")).to_have_text("3")
    expect(other.locator("[data-active-version]")).to_contain_text("greet v1")

    # roll back (to v2), then the history shows every move with its reason
    other.get_by_label("Reason for rolling back").fill("v1 was better after all? no")
    other.get_by_role("button", name="Roll back to greet v2").click()
    expect(other.locator("[data-active-version]")).to_contain_text("greet v2")
    expect(other.get_by_role("heading", name="History").locator("..")).to_contain_text("kinder")
    pointer = server.api("GET", "/api/prompts/pointer?model=demo").json()
    assert pointer["activeVersionId"] == v2 and pointer["version"] == 4

    # the refused change is a dead letter; replayed on the current version it applies
    other.goto(server.url + "/console/prompts/dead-letters")
    letter = other.locator("tr", has_text="PROMPT_POINTER_CONFLICT")
    expect(letter).to_have_count(1)
    letter.get_by_label("rebase on current").check()
    letter.get_by_role("button", name="Replay").click()
    expect(other.locator("#flash")).to_contain_text("replayed")
    pointer = server.api("GET", "/api/prompts/pointer?model=demo").json()
    assert pointer["activeVersionId"] == v1 and pointer["version"] == 5

    # the resolve preview says which level matched and renders the messages
    other.goto(server.url + "/console/prompts/resolve?model=demo")
    expect(other.locator("[data-level]")).to_have_text("tenant+model")
    expect(other.locator("pre").first).to_contain_text("Answer briefly.")
    other.close()


def test_a_canary_with_its_split_promoted_and_audited(admin: Any, server: Server) -> None:
    expect = _expect(admin)
    ids = []
    for text in ("Be terse.", "Be terse and warm."):
        r = server.api(
            "POST", "/api/prompts/versions", json={"name": "canary", "content": {"system": text}}
        )
        assert r.status_code in (200, 201), r.text
        ids.append(r.json()["id"])
    v1, v2 = ids
    # a scope of its own (a workflow's), so the other prompt test's pointer is untouched
    admin.goto(server.url + "/console/prompts/scope?model=demo&workflowId=canary-wf")
    admin.get_by_label("Version to deploy").select_option(v1)
    admin.get_by_role("button", name="Deploy", exact=True).click()
    expect(admin.locator("[data-active-version]")).to_contain_text("canary v1")

    admin.get_by_label("Canary version").select_option(v2)
    admin.get_by_label("Percent of conversations").fill("25")
    admin.get_by_label("Reason for the canary").fill("try warmth")
    admin.get_by_role("button", name="Start canary").click()
    pointer = admin.get_by_role("region", name="Pointer")
    expect(pointer).to_contain_text("canary v2")
    expect(pointer).to_contain_text("25% of conversations")
    scope = "/api/prompts/pointer?model=demo&workflowId=canary-wf"
    assert server.api("GET", scope).json()["canaryPercent"] == 25

    admin.get_by_label("Reason for the canary decision").fill("warmth wins")
    admin.get_by_role("button", name="Promote canary").click()
    expect(admin.locator("[data-active-version]")).to_contain_text("canary v2")
    expect(pointer).not_to_contain_text("% of conversations")
    after = server.api("GET", scope).json()
    assert after["activeVersionId"] == v2 and after["canaryVersionId"] is None
    # the audit trail names both decisions and who took them (by name)
    audit = admin.get_by_role("region", name="Audit")
    expect(audit).to_contain_text("canary_start")
    expect(audit).to_contain_text("canary_promote")
    expect(audit.locator("tr", has_text="canary_promote")).to_contain_text("admin")


def test_publish_and_watch_a_run_stream(admin: Any, server: Server) -> None:
    expect = _expect(admin)
    admin.goto(server.url + "/console/workflows/publish")
    doc = admin.get_by_label("Workflow document")
    doc.fill(WORKFLOW.replace("{source: answer}", "{source: nowhere}"))
    admin.get_by_role("button", name="Validate and draw").click()
    expect(admin.get_by_role("alert")).to_contain_text("at node reply")
    expect(admin.locator('.graph [data-node="reply"]')).to_have_class("node bad")

    admin.get_by_label("Workflow document").fill(WORKFLOW)
    admin.get_by_role("button", name="Publish").click()
    expect(admin.locator("#flash")).to_contain_text("Published console-hello v1")

    admin.get_by_label("Input (JSON)").fill('{"message": "Tell me about gas"}')
    admin.get_by_role("button", name="Run and stream").click()
    status = admin.locator("[data-run-status]")
    output = admin.locator("[data-run-output]")
    # the answer arrives in pieces while the run is still running
    expect(output).to_contain_text("[demo]")
    partial = output.text_content() or ""
    expect(status).to_have_text("succeeded")
    final = output.text_content() or ""
    assert final.startswith(partial) and len(final) > len(partial)
    expect(admin.locator("[data-run-log]")).to_contain_text("answer")
    expect(admin.locator("[data-run-summary]")).to_contain_text("tokens")

    # a past run replays from its stored events
    admin.goto(server.url + "/console/workflows/console-hello")
    admin.locator("a", has_text="run_").first.click()
    expect(admin.locator("[data-run-status]")).to_have_text("succeeded")
    expect(admin.locator("[data-run-output]")).to_contain_text("[demo]")


def test_a_budget_refuses_the_next_call(admin: Any, server: Server) -> None:
    expect = _expect(admin)
    r = server.api(
        "POST",
        "/api/workflows",
        content=WORKFLOW.replace("console-hello", "budgeted"),
        headers={"Content-Type": "application/yaml"},
    )
    assert r.status_code in (200, 201), r.text
    admin.goto(server.url + "/console/spend")
    form = admin.locator("#budget-form")
    form.get_by_label("Period").select_option("day")
    form.get_by_label("Token limit").fill("1")  # the demo model is free: limit its tokens
    form.get_by_role("button", name="Save limit").click()
    expect(admin.locator("#flash")).to_contain_text("daily limit of the tenant is set")
    expect(admin.get_by_role("meter", name="Budget used")).to_be_visible()
    try:
        admin.goto(server.url + "/console/workflows/budgeted")
        admin.get_by_role("button", name="Run and stream").click()
        expect(admin.locator("[data-run-status]")).to_have_text("failed")
        expect(admin.locator("[data-run-summary]")).to_contain_text("TOKEN_BUDGET_EXCEEDED")
        refused = server.api(
            "POST",
            "/v1/chat/completions",
            json={"model": "demo", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert refused.status_code == 402
    finally:
        admin.goto(server.url + "/console/spend")
        form = admin.locator("#budget-form")
        form.get_by_label("Period").select_option("day")
        form.get_by_role("button", name="Save limit").click()
        expect(admin.locator("#flash")).to_contain_text("removed")


def test_a_new_key_is_shown_once_its_viewer_is_limited_and_revoking_it_signs_out(
    admin: Any, browser: Any, server: Server
) -> None:
    expect = _expect(admin)
    admin.goto(server.url + "/console/tenancy")
    form = admin.locator("form", has=admin.get_by_role("button", name="Create key"))
    form.get_by_label("Name").fill("read only")
    form.get_by_label("Role (new service account)").select_option("viewer")
    form.get_by_label("Expires (UTC, optional)").fill("2099-01-01T00:00")
    form.get_by_role("button", name="Create key").click()
    expect(admin.locator("#new-key")).to_contain_text("shown only once")
    viewer_key = admin.locator("[data-new-key]").text_content() or ""
    assert viewer_key.startswith("gw_")
    keys = admin.get_by_role("region", name="API keys of default")
    expect(keys.locator("tr", has_text="read only")).to_contain_text("2099-01-01")
    admin.reload()  # shown once: not on the page any more
    expect(admin.locator("[data-new-key]")).to_have_count(0)
    assert viewer_key not in admin.content()

    page = sign_in(browser, server, viewer_key)
    viewer = _expect(page)
    try:
        nav = page.get_by_role("navigation", name="Sections")
        viewer(nav).not_to_contain_text("Tenants & keys")
        page.goto(server.url + "/console/models")
        viewer(page.get_by_text("Trip / reset / disable")).to_have_count(0)
        page.goto(server.url + "/console/spend")
        viewer(page.locator("#budget-form")).to_have_count(0)
        token = page.evaluate(
            "() => JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token']"
        )
        page.goto(server.url + "/console/tenancy")
        viewer(page.get_by_role("alert")).to_contain_text("FORBIDDEN")
        # forging the form anyway (with the page's own CSRF token): the service refuses
        r = page.request.post(
            server.url + "/console/models/breakers/demo",
            form={"action": "trip", "reason": "viewer", "csrf": token},
            headers={"Origin": server.url},
        )
        assert r.status == 403 and "FORBIDDEN" in r.text()
        assert breaker_state(server, "demo") == "closed"

        # the admin revokes the key: the viewer's session ends with it
        admin.once("dialog", lambda d: d.accept())
        keys = admin.get_by_role("region", name="API keys of default")
        keys.locator("tr", has_text="read only").get_by_role("button", name="Revoke").click()
        expect(admin.locator("#flash")).to_contain_text("Revoked key read only")
        page.goto(server.url + "/console/models")
        viewer(page.get_by_label("API key")).to_be_visible()
    finally:
        page.context.close()


class _AttackerPage(http.server.BaseHTTPRequestHandler):
    target = ""

    def do_GET(self) -> None:
        body = (
            f'<form id="f" method="post" action="{self.target}/console/models/breakers/demo">'
            '<input name="action" value="trip"><input name="reason" value="csrf">'
            "</form><script>document.getElementById('f').submit()</script>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def attacker(server: Server) -> Iterator[str]:
    handler = type("Handler", (_AttackerPage,), {"target": server.url})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def test_a_cross_site_request_without_the_csrf_token_is_refused(
    admin: Any, server: Server, attacker: str
) -> None:
    # another origin (same host, other port: same *site*, so SameSite alone would let the
    # cookie through) auto-submits a form at the console: refused, nothing changes
    with admin.expect_response(lambda r: "/console/models/breakers/demo" in r.url) as resp:
        admin.goto(attacker)
    assert resp.value.status == 403
    assert breaker_state(server, "demo") == "closed"
    # the same from a script without the token: REST and GraphQL mutations refuse too
    status = admin.evaluate(
        """async () => {
          const json = {'content-type': 'application/json'};
          const rest = await fetch('/api/budgets', {method: 'PUT', headers: json,
            body: JSON.stringify({period: 'day', costLimit: '1'})});
          const gql = await fetch('/graphql', {method: 'POST', headers: json,
            body: JSON.stringify({query: 'mutation { __typename }'})});
          return [rest.status, (await gql.json()).errors[0].extensions.code];
        }"""
    )
    assert status == [403, "FORBIDDEN"]


UNLABELLED = """() => [...document.querySelectorAll(
    'input:not([type=hidden]), select, textarea, button')]
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                && !(el.tagName === 'BUTTON' && el.textContent.trim()))
  .map(el => el.outerHTML.slice(0, 120))"""

PAGES = [
    "/console",
    "/console/models",
    "/console/spend",
    "/console/prompts",
    "/console/prompts/versions",
    "/console/prompts/dead-letters",
    "/console/prompts/audit",
    "/console/prompts/resolve?model=demo",
    "/console/workflows",
    "/console/workflows/publish",
    "/console/documents",
    "/console/documents/search",
    "/console/documents/audit",
    "/console/document-dead-letters",
    "/console/collections",
    "/console/tenancy",
]


def test_on_a_phone_with_the_keyboard_labelled_in_both_themes(browser: Any, server: Server) -> None:
    page = sign_in(browser, server, viewport={"width": 390, "height": 844}, is_mobile=True)
    expect = _expect(page)
    try:
        for path in PAGES:
            page.goto(server.url + path)
            # readable on a phone: nothing wider than the screen (wide tables scroll inside)
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path
            # every control has an accessible name
            assert page.evaluate(UNLABELLED) == [], path
        # keyboard: the first Tab reaches "Skip to content", Enter moves focus to the page
        page.goto(server.url + "/console/models")
        page.keyboard.press("Tab")
        expect(page.locator(":focus")).to_have_text("Skip to content")
        page.keyboard.press("Enter")
        expect(page.locator(":focus")).to_have_attribute("id", "main")
        # light/dark: follows the system until toggled, and the choice survives a reload
        before = page.evaluate("getComputedStyle(document.body).backgroundColor")
        page.get_by_role("button", name="Switch between light and dark theme").click()
        after = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert before != after
        page.reload()
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") == after
    finally:
        page.context.close()


def _local_only(page: Any, server: Server) -> list[str]:
    """Route every request of the page's context: anything not to the local server is
    aborted and recorded (the test then fails naming it)."""
    fetched_elsewhere: list[str] = []

    def route(r: Any) -> None:
        if r.request.url.startswith(server.url + "/"):
            r.continue_()
        else:
            fetched_elsewhere.append(r.request.url)
            r.abort()

    page.context.route("**/*", route)
    return fetched_elsewhere


def test_api_docs_and_graphiql_load_nothing_from_the_internet_and_run_a_query(
    admin: Any, server: Server
) -> None:
    expect = _expect(admin)
    elsewhere = _local_only(admin, server)
    # Swagger UI: the signed-in cookie authenticates "Try it out"
    admin.goto(server.url + "/docs")
    # the first /openapi.json builds the whole schema: seconds on a loaded machine
    expect(admin.locator(".swagger-ui .info .title")).to_contain_text("gasworks", timeout=30_000)
    op = admin.locator(".opblock", has=admin.get_by_text("Registry entries", exact=True))
    op.locator(".opblock-summary").click()
    op.get_by_role("button", name="Try it out").click()
    op.get_by_role("button", name="Execute").click()
    expect(op.locator(".live-responses-table tbody .response-col_status").first).to_have_text("200")
    expect(op.locator(".live-responses-table tbody .microlight").first).to_contain_text("demo")
    # ReDoc renders the same schema (its first render of the whole schema is slow on a
    # loaded machine: the menu appeared after 5 s in a CI run at load 7 on 2 cores)
    admin.goto(server.url + "/redoc")
    expect(admin.get_by_role("menuitem", name="models")).to_be_visible(timeout=30_000)
    # its body renders after the menu, in chunks (slow on a loaded machine)
    heading = admin.get_by_role("heading", name="Models callable through this gateway")
    expect(heading).to_be_visible(timeout=30_000)
    # GraphiQL: the query from the address runs with the session cookie
    admin.goto(server.url + "/graphql?q=" + "%7B%20me%20%7B%20role%20%7D%20%7D")
    admin.locator(".graphiql-execute-button").click()
    expect(admin.locator(".result-window")).to_contain_text('"role": "owner"')
    assert elsewhere == []
