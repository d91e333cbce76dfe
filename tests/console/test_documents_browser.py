"""The documents and collections pages in a real Chromium against a real server (both
databases): upload a file in the browser and watch it become ready, replay a dead-lettered
document, create a collection and grant it (a viewer without the grant sees nothing), delete
it; CSRF on the new forms; a viewer gets no delete buttons and a forged post is refused.

The server is ``gasworks serve``'s app with the tests' FakeEmbedder (``_serve_docs.py``): no
embedding model to load, and an embedder a test can switch off to dead-letter a document.
"""

from __future__ import annotations

import http.server
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gasworks.testing.browser import Server
from tests.console.conftest import sign_in
from tests.console.test_browser import UNLABELLED
from tests.dbtemplates import DIALECTS
from tests.documents import samples

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SERVE_DOCS = Path(__file__).with_name("_serve_docs.py")
#: bytes of their own (the same bytes uploaded again would be the first document, linked)
HANDBOOK = b"# Handbook\n\nStaff take their leave in August.\n"


@pytest.fixture(scope="module", params=DIALECTS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    url = tpl = None
    if request.param == "postgres":
        tpl = request.getfixturevalue("postgres_template")
        url = tpl.new()
    srv = Server(
        home=tmp_path_factory.mktemp("console-docs"),
        database_url=url,
        command=[sys.executable, str(SERVE_DOCS)],
        extra_env={
            # a failing stage becomes a dead letter at its second attempt, without a wait
            "GASWORKS_DOCUMENTS_MAX_ATTEMPTS": "2",
            "GASWORKS_DOCUMENTS_RETRY_BASE_SECONDS": "0",
            "GASWORKS_DOCUMENTS_POLL_MAX_SECONDS": "0.2",
            "GASWORKS_DOCUMENTS_OCR_ENGINE": "none",
        },
    ).start()
    yield srv
    srv.stop()
    if tpl is not None and url is not None:
        tpl.drop(url)


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def _upload_api(server: Server, name: str, data: bytes, collection: str | None = None) -> str:
    form = {"collection": collection} if collection else None
    r = server.api("POST", "/api/documents", files=[("files", (name, data))], data=form)
    assert r.status_code == 201, r.text
    return str(r.json()["documents"][0]["document"]["id"])


def _viewer_key(server: Server, name: str) -> str:
    r = server.api("POST", "/api/keys", json={"name": name, "role": "viewer"})
    assert r.status_code == 201, r.text
    return str(r.json()["key"])


def test_upload_in_the_browser_watch_it_become_ready_then_find_it(
    admin: Any, server: Server
) -> None:
    expect = _expect()
    admin.goto(server.url + "/console/documents")
    admin.get_by_label("Files").set_input_files(
        [
            {"name": "gasworks-guide.md", "mimeType": "text/markdown", "buffer": samples.MARKDOWN},
            {"name": "notes.html", "mimeType": "text/html", "buffer": samples.HTML},
        ]
    )
    admin.get_by_role("button", name="Upload", exact=True).click()
    uploads = admin.locator("[data-upload-list] li")
    expect(uploads).to_have_count(2)
    guide = uploads.filter(has_text="gasworks-guide.md")
    # each file's status updates in place until the pipeline is done
    expect(guide.locator("[data-doc-status]")).to_have_attribute(
        "data-doc-status", "ready", timeout=30_000
    )
    expect(guide).to_contain_text("chunk")
    expect(uploads.filter(has_text="notes.html").locator("[data-doc-status]")).to_have_attribute(
        "data-doc-status", "ready", timeout=30_000
    )
    # the list finds it by a part of its name; the document page shows every stage done
    admin.get_by_label("Search documents (name or id)").fill("GUIDE")
    admin.get_by_role("button", name="Search", exact=True).click()
    rows = admin.locator("#document-rows tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("ready")
    rows.first.get_by_role("link", name="gasworks-guide.md").click()
    expect(admin.locator("[data-doc-status]").first).to_have_attribute("data-doc-status", "ready")
    for stage in ("extract", "chunk", "embed", "index"):
        expect(admin.locator(f'[data-stage="{stage}"]')).to_have_class("done")
    expect(admin.locator("[data-doc-chunks]")).not_to_have_text("—")
    # and the search playground cites it
    admin.goto(server.url + "/console/documents/search")
    admin.get_by_label("Query").fill("refunds")
    admin.get_by_label("Mode").select_option("keyword")
    admin.get_by_role("button", name="Search", exact=True).click()
    hits = admin.locator("[data-hits]")
    expect(hits).to_contain_text("gasworks-guide.md")
    expect(hits).to_contain_text("original card")


def test_a_dead_lettered_document_replayed_from_the_console(admin: Any, server: Server) -> None:
    expect = _expect()
    down = server.home / "embedder-down"
    down.touch()
    try:
        doc_id = _upload_api(server, "incident.txt", b"The gas main burst at noon.")
        admin.goto(server.url + f"/console/documents/{doc_id}")
        # live: the page follows the attempts until the document has failed
        expect(admin.locator("#doc-live [data-doc-status]")).to_have_attribute(
            "data-doc-status", "failed", timeout=30_000
        )
        expect(admin.locator("[data-doc-error]")).to_contain_text("PROVIDER_UNAVAILABLE")
    finally:
        down.unlink()
    admin.goto(server.url + "/console/document-dead-letters?stage=embed")
    letter = admin.locator("tr", has=admin.get_by_role("link", name="incident.txt"))
    expect(letter).to_have_count(1)
    expect(letter).to_contain_text("PROVIDER_UNAVAILABLE")
    letter.get_by_role("button", name="Replay").click()
    expect(admin.locator("#flash")).to_contain_text("queued again")
    expect(admin.locator("tr", has_text="incident.txt")).to_have_count(0)
    admin.goto(server.url + f"/console/documents/{doc_id}")
    expect(admin.locator("#doc-live [data-doc-status]")).to_have_attribute(
        "data-doc-status", "ready", timeout=30_000
    )
    assert server.api("GET", f"/api/documents/{doc_id}").json()["status"] == "ready"
    admin.goto(server.url + "/console/documents/audit")
    expect(admin.locator("main")).to_contain_text("deadletters.replayed")


def test_a_collection_its_grant_a_viewer_and_its_deletion(
    admin: Any, browser: Any, server: Server
) -> None:
    expect = _expect()
    admin.goto(server.url + "/console/collections")
    form = admin.locator("form", has=admin.get_by_role("button", name="Create collection"))
    form.get_by_label("Name").fill("handbook")
    form.get_by_label("Description").fill("Staff handbook")
    form.get_by_role("button", name="Create collection").click()
    expect(admin.locator("#flash")).to_contain_text("Created collection handbook")
    col_id = re.search(r"/console/collections/(col_\w+)", admin.url)
    assert col_id is not None
    doc_id = _upload_api(server, "handbook.md", HANDBOOK, col_id.group(1))
    key = _viewer_key(server, "reader")

    viewer = sign_in(browser, server, key)
    try:
        nav = viewer.get_by_role("navigation", name="Sections")
        expect(nav.get_by_role("link", name="Documents")).to_be_visible()
        viewer.goto(server.url + "/console/documents")
        expect(viewer.locator("#document-rows")).not_to_contain_text("handbook.md")
        expect(viewer.get_by_label("Files")).to_have_count(0)  # no upload for a viewer
        viewer.goto(server.url + f"/console/documents/{doc_id}")
        expect(viewer.get_by_role("alert")).to_contain_text("DOCUMENT_NOT_FOUND")

        admin.reload()
        grant = admin.locator("#grant-form")
        grant.get_by_label("Grant read to").select_option("role")
        grant.get_by_label("Role to grant").select_option("viewer")
        grant.get_by_role("button", name="Grant").click()
        expect(admin.locator("#flash")).to_contain_text("Granted read to role viewer")
        expect(admin.locator('[data-grant="role:viewer"]')).to_have_count(1)
        expect(admin.get_by_role("region", name="Audit")).to_contain_text("collection.granted")

        viewer.goto(server.url + "/console/documents")
        expect(viewer.locator("#document-rows")).to_contain_text("handbook.md")
        viewer.goto(server.url + f"/console/documents/{doc_id}")
        expect(viewer.locator("#doc-live [data-doc-status]")).to_have_attribute(
            "data-doc-status", "ready", timeout=30_000
        )
        # no delete, re-ingest or grant controls for a viewer
        expect(viewer.get_by_role("button", name="Delete document handbook.md")).to_have_count(0)
        expect(viewer.get_by_role("button", name="Re-ingest")).to_have_count(0)
        viewer.goto(server.url + f"/console/collections/{col_id.group(1)}")
        expect(viewer.locator("#grant-form")).to_have_count(0)
        expect(viewer.get_by_role("button", name="Delete collection handbook")).to_have_count(0)
        # forging the delete anyway, with the page's own CSRF token: the service refuses
        token = viewer.evaluate(
            "() => JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token']"
        )
        for path in (f"/documents/{doc_id}/delete", f"/collections/{col_id.group(1)}/delete"):
            r = viewer.request.post(
                server.url + "/console" + path,
                form={"csrf": token},
                headers={"Origin": server.url},
            )
            assert r.status == 403 and "FORBIDDEN" in r.text(), path
        assert server.api("GET", f"/api/documents/{doc_id}").status_code == 200

        # the admin deletes the collection: the page says what goes with it, then it is gone
        admin.reload()
        expect(admin.locator("[data-cascade-count]")).to_have_text("1")
        admin.once("dialog", lambda d: d.accept())
        admin.get_by_role("button", name="Delete collection handbook").click()
        expect(admin.locator("#flash")).to_contain_text("Deleting collection handbook")
        expect(admin.locator("#flash")).to_contain_text("1 document in no other collection")
        expect(admin.get_by_role("region", name="Collections you can read")).not_to_contain_text(
            "handbook"
        )
        viewer.goto(server.url + "/console/documents")
        expect(viewer.locator("#document-rows")).not_to_contain_text("handbook.md")
        assert server.api("GET", f"/api/documents/{doc_id}").status_code == 404
    finally:
        viewer.context.close()


class _AttackerPage(http.server.BaseHTTPRequestHandler):
    target = ""

    def do_GET(self) -> None:
        body = (
            f'<form id="f" method="post" action="{self.target}/console/collections">'
            '<input name="name" value="csrf-made"></form>'
            "<script>document.getElementById('f').submit()</script>"
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


def test_the_new_forms_refuse_a_request_without_the_csrf_token(
    admin: Any, server: Server, attacker: str
) -> None:
    with admin.expect_response(lambda r: r.url.endswith("/console/collections")) as resp:
        admin.goto(attacker)
    assert resp.value.status == 403
    names = [c["name"] for c in server.api("GET", "/api/collections").json()]
    assert "csrf-made" not in names
    # a same-origin script without the token: upload and delete refused too
    admin.goto(server.url + "/console/documents")
    statuses = admin.evaluate(
        """async () => {
          const body = new FormData();
          body.append('files', new Blob(['hello']), 'forged.txt');
          const up = await fetch('/console/documents/upload', {method: 'POST', body});
          const del = await fetch('/console/collections/x/delete', {method: 'POST'});
          return [up.status, del.status];
        }"""
    )
    assert statuses == [403, 403]
    found = server.api("GET", "/api/documents").json()
    assert "forged.txt" not in [d["name"] for d in found]


def test_a_document_and_a_collection_on_a_phone_every_control_labelled(
    browser: Any, server: Server
) -> None:
    r = server.api("POST", "/api/collections", json={"name": "phone-kb", "description": "x"})
    assert r.status_code == 201, r.text
    col_id = r.json()["id"]
    doc_id = _upload_api(server, "phone.md", b"# Phone\n\nSmall screens too.\n", col_id)
    page = sign_in(browser, server, viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        for path in (f"/console/documents/{doc_id}", f"/console/collections/{col_id}"):
            page.goto(server.url + path)
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path
            assert page.evaluate(UNLABELLED) == [], path
    finally:
        page.context.close()
