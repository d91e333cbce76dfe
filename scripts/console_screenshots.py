"""Regenerate the console screenshots in the docs (``make screenshots``).

Starts a real ``gasworks serve`` on a fresh home (SQLite), fills it through the REST API
(demo workflows and runs, prompt versions, a budget, calls to a priced demo model, a tripped
breaker, a collection with three documents) and photographs the main pages with the system
Chromium, the same way the browser tests drive it. Nothing leaves the machine: every model is
the offline demo model or the local embedding model.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from gasworks.testing.browser import Server, launch

BAD_WORKFLOW = """id: triage
name: Triage
nodes:
  - id: classify
    type: IntentClassifier
    config: {intents: [billing, other]}
  - id: route
    type: Router
    config: {routes: [{when: "state.intent == 'billing'", to: billing}]}
  - id: billing
    type: ModelInvoke
    config: {input: "${input.message}"}
edges:
  - {from: classify, to: route}
  - {from: route, to: billing}
"""


DOCUMENTS = [
    (
        "refunds.md",
        "# Refunds\n\nRefunds go back to the original card within five business days.\n\n"
        "## Exceptions\n\nGift cards are refunded as store credit.\n",
    ),
    (
        "shipping.md",
        "# Shipping\n\nParcels leave the warehouse within two days of the order.\n",
    ),
    ("returns.txt", "Returns are accepted within thirty days with the receipt.\n"),
]


def seed(srv: Server) -> dict[str, Any]:
    def ok(r: Any) -> Any:
        assert r.status_code < 300, r.text
        return r.json() if r.content else None

    ok(
        srv.api(
            "POST",
            "/api/models",
            json={
                "id": "demo-priced",
                "provider": "demo",
                "displayName": "Demo (priced like a small model)",
                "inputPer1k": "0.15",
                "outputPer1k": "0.6",
                "capabilities": {"streaming": True, "jsonMode": True},
            },
        )
    )
    srv.cli("workflows", "demo", "install", "--tenant", "default")
    ok(srv.api("PUT", "/api/budgets", json={"period": "month", "costLimit": "2.00"}))
    for i in range(6):
        ok(
            srv.api(
                "POST",
                "/api/workflows/demo-chatbot/runs",
                json={"input": {"message": f"Hello {i}"}},
            )
        )
    for i in range(12):
        # max_tokens keeps the pre-call estimate (what the budget reserves) small
        ok(
            srv.api(
                "POST",
                "/v1/chat/completions",
                json={
                    "model": "demo-priced",
                    "max_tokens": 300,
                    "messages": [{"role": "user", "content": "Say hi " * (i + 1)}],
                },
            )
        )
    v1 = ok(
        srv.api(
            "POST",
            "/api/prompts/versions",
            json={
                "name": "support-answer",
                "message": "first",
                "content": {
                    "system": "You answer support questions.\nBe brief.",
                    "user": "${inputs.user_prompt}",
                },
            },
        )
    )
    v2 = ok(
        srv.api(
            "POST",
            "/api/prompts/versions",
            json={
                "name": "support-answer",
                "message": "kinder, cites the docs",
                "content": {
                    "system": "You answer support questions.\nBe brief and kind.\nCite the docs.",
                    "user": "${inputs.user_prompt}",
                    "parameters": {"temperature": 0.2},
                },
            },
        )
    )
    scope = {"model": "demo"}
    ok(
        srv.api(
            "POST",
            "/api/prompts/pointer/move",
            json={"scope": scope, "versionId": v1["id"], "expectedVersion": 0, "reason": "launch"},
        )
    )
    ok(
        srv.api(
            "POST",
            "/api/prompts/pointer/move",
            json={
                "scope": scope,
                "versionId": v2["id"],
                "expectedVersion": 1,
                "reason": "kinder tone",
            },
        )
    )
    ok(
        srv.api(
            "POST",
            "/api/breakers/claude-3-5-haiku/trip",
            json={"reason": "provider incident #1432"},
        )
    )
    col = ok(
        srv.api(
            "POST",
            "/api/collections",
            json={"name": "support-kb", "description": "What the support bot may cite"},
        )
    )
    ok(
        srv.api(
            "POST",
            f"/api/collections/{col['id']}/grants",
            json={"kind": "role", "subject": "viewer"},
        )
    )
    docs = []
    for name, text in DOCUMENTS:
        up = ok(
            srv.api(
                "POST",
                "/api/documents",
                files=[("files", (name, text.encode()))],
                data={"collection": col["id"]},
            )
        )
        docs.append(up["documents"][0]["document"]["id"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        states = [ok(srv.api("GET", f"/api/documents/{d}"))["status"] for d in docs]
        if all(st in ("ready", "failed") for st in states):
            break
        time.sleep(0.5)
    return {"v1": v1["id"], "v2": v2["id"], "collection": col["id"], "document": docs[0]}


def main(out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as home:
        srv = Server(home=Path(home)).start()
        try:
            ids = seed(srv)
            shots = [
                ("overview", "/console", "light"),
                ("overview-dark", "/console", "dark"),
                ("models", "/console/models?q=claude", "light"),
                ("spend", "/console/spend", "light"),
                ("prompts-scope", "/console/prompts/scope?model=demo&tenantScoped=true", "light"),
                ("prompts-diff", f"/console/prompts/versions/{ids['v2']}", "dark"),
                ("workflow", "/console/workflows/demo-support", "light"),
                ("tenancy", "/console/tenancy", "light"),
                ("documents", "/console/documents", "light"),
                ("document", f"/console/documents/{ids['document']}", "light"),
                ("collection", f"/console/collections/{ids['collection']}", "dark"),
                ("documents-search", "/console/documents/search?query=refund+card", "light"),
            ]
            with sync_playwright() as p:
                browser = launch(p)
                for scheme in ("light", "dark"):
                    ctx = browser.new_context(
                        viewport={"width": 1280, "height": 860}, color_scheme=scheme
                    )
                    page = ctx.new_page()
                    page.goto(srv.url + "/console/sign-in")
                    if scheme == "light":
                        page.screenshot(path=str(out / "console-sign-in.png"))
                    page.get_by_label("API key").fill(srv.key)
                    page.get_by_role("button", name="Sign in").click()
                    page.wait_for_url(srv.url + "/console")
                    for name, path, want in shots:
                        if want != scheme:
                            continue
                        page.goto(srv.url + path)
                        page.wait_for_load_state("networkidle")
                        page.screenshot(path=str(out / f"console-{name}.png"), full_page=False)
                    if scheme == "light":
                        page.goto(srv.url + "/console/workflows/demo-chatbot")
                        page.get_by_label("Input (JSON)").fill('{"message": "What can you do?"}')
                        page.get_by_role("button", name="Run and stream").click()
                        page.locator("[data-run-status]", has_text="succeeded").wait_for()
                        page.screenshot(path=str(out / "console-run.png"))
                        page.goto(srv.url + "/console/workflows/publish")
                        page.get_by_label("Workflow document").fill(BAD_WORKFLOW)
                        page.get_by_role("button", name="Validate and draw").click()
                        page.get_by_role("alert").wait_for()
                        page.screenshot(path=str(out / "console-publish-invalid.png"))
                    ctx.close()
                phone = browser.new_context(
                    viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
                )
                page = phone.new_page()
                page.goto(srv.url + "/console/sign-in")
                page.get_by_label("API key").fill(srv.key)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url(srv.url + "/console")
                page.wait_for_load_state("networkidle")
                page.screenshot(path=str(out / "console-phone.png"))
                phone.close()
                browser.close()
        finally:
            srv.stop()
    print(f"screenshots written to {out}/")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/images")
