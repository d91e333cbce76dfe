"""Workflows: list, a graph of each version, validation problems on the node, publish,
shares, a run panel that streams a run live (the REST SSE route, with the session cookie)
and past runs replayed from their stored events."""

from __future__ import annotations

import json
from typing import Any

import yaml
from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from gasworks.console.graph import draw
from gasworks.console.web import (
    SEARCH_WINDOW,
    Caller,
    CallerDep,
    ConsoleRoute,
    form_data,
    is_htmx,
    listing,
    parse,
    render,
)
from gasworks.db.paging import Page
from gasworks.errors import ValidationFailed, WorkflowInvalid
from gasworks.observability.request_id import current_request_id
from gasworks.workflows import workflow_engine
from gasworks.workflows.definition import parse_document
from gasworks.workflows.schemas import RunIn, ShareIn

router = APIRouter(route_class=ConsoleRoute)

EXAMPLE = """id: hello
name: Hello
state:
  message: {type: string, required: true}
nodes:
  - id: answer
    type: ModelInvoke
    config: {input: "${input.message}", stream: true}
  - id: reply
    type: StreamToClient
    config: {source: answer}
edges:
  - {from: answer, to: reply}
"""


@router.get("/workflows", response_class=HTMLResponse)
async def list_page(c: CallerDep) -> HTMLResponse:
    items = await workflow_engine(c.runtime).catalog.list_workflows(c.ctx, SEARCH_WINDOW)
    rows = listing(items, c.request, lambda w: (w.slug, w.name, w.description, w.owner_id))
    return render(c, "workflows.html", active="workflows", title="Workflows", items=rows)


async def _publish_page(
    c: Caller,
    text: str,
    *,
    issues: list[dict[str, Any]] | None = None,
    doc: dict[str, Any] | None = None,
    message: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    drawn = draw(doc) if doc is not None else None
    return render(
        c,
        "workflow_publish.html",
        active="workflows",
        title="Publish a workflow",
        text=text,
        issues=drawn.issues if drawn else (issues or []),
        graph=drawn,
        message=message,
        status_code=status_code,
        push_url="/console/workflows/publish",
    )


@router.get("/workflows/publish", response_class=HTMLResponse)
async def publish_form(c: CallerDep) -> HTMLResponse:
    return await _publish_page(c, EXAMPLE)


@router.post("/workflows/publish", response_class=HTMLResponse)
async def publish(c: CallerDep) -> HTMLResponse:
    form = await form_data(c.request)
    text = form.get("document", "")
    try:
        doc = parse_document(text)
        if not isinstance(doc, dict):
            raise WorkflowInvalid(
                "A workflow document is a mapping.",
                details={
                    "issues": [{"code": "INVALID_DOCUMENT", "path": "", "message": "not a mapping"}]
                },
            )
    except WorkflowInvalid as exc:
        return await _publish_page(c, text, issues=exc.details.get("issues"), status_code=422)
    if form.get("intent") == "validate":
        ok = not draw(doc).issues
        return await _publish_page(
            c, text, doc=doc, message="Valid: ready to publish." if ok else None
        )
    try:
        out = await workflow_engine(c.runtime).catalog.publish(c.ctx, doc)
    except WorkflowInvalid:
        return await _publish_page(c, text, doc=doc, status_code=422)
    said = (
        f"Published {out.workflow.slug} v{out.version.version}."
        if out.created
        else f"Same document as {out.workflow.slug} v{out.version.version}: nothing new published."
    )
    return await _workflow_page(c, out.workflow.slug, message=said)


async def _workflow_page(
    c: Caller,
    slug: str,
    *,
    message: str | None = None,
    run_id: str | None = None,
) -> HTMLResponse:
    q = c.request.query_params
    number = int(q["version"]) if q.get("version", "").isdigit() else None
    view = await workflow_engine(c.runtime).view(
        c.ctx, slug, version=number, run_id=run_id, page=SEARCH_WINDOW, runs=Page(200, 0)
    )
    wf, ver = view.workflow, view.version
    run_rows = listing(
        view.runs, c.request, lambda r: (r.id, r.status, r.conversation_id), page_param="runs"
    )
    state = ver.document.get("state") or {}
    example_input = {
        k: "Hello!" for k, v in state.items() if isinstance(v, dict) and v.get("required")
    }
    return render(
        c,
        "workflow.html",
        active="workflows",
        title=wf.name,
        wf=wf,
        versions=view.versions,
        ver=ver,
        graph=draw(ver.document),
        shares=view.shares,
        can_edit=view.may_edit,
        runs=run_rows,
        run=view.run,
        example_input=json.dumps(example_input or {"message": "Hello!"}),
        document=yaml.safe_dump(ver.document, sort_keys=False),
        message=message,
        push_url=f"/console/workflows/{slug}" + (f"/runs/{run_id}" if run_id else ""),
    )


@router.get("/workflows/{slug}", response_class=HTMLResponse)
async def workflow_page(slug: str, c: CallerDep) -> HTMLResponse:
    return await _workflow_page(c, slug)


@router.get("/workflows/{slug}/runs/{run_id}", response_class=HTMLResponse)
async def run_page(slug: str, run_id: str, c: CallerDep) -> HTMLResponse:
    """A past run, replayed from its stored events."""
    return await _workflow_page(c, slug, run_id=run_id)


@router.post("/workflows/{slug}/runs", response_class=HTMLResponse)
async def start_run(slug: str, c: CallerDep) -> HTMLResponse:
    form = await form_data(c.request)
    try:
        inputs = json.loads(form.get("input", "{}"))
    except ValueError as exc:
        raise ValidationFailed(
            f"The input is not valid JSON: {exc}.", details={"field": "input"}
        ) from None
    body = parse(
        RunIn, {"input": inputs, "conversationId": form.get("conversationId"), "stream": True}
    )
    live = await workflow_engine(c.runtime).start(
        c.ctx, slug, body, request_id=current_request_id()
    )
    if not is_htmx(c.request):
        return await _workflow_page(c, slug, run_id=None, message=f"Run {live.run_id} started.")
    return render(c, "_run_panel.html", run_id=live.run_id, slug=slug, live=True)


@router.post("/workflows/{slug}/shares", response_class=HTMLResponse)
async def add_share(slug: str, c: CallerDep) -> HTMLResponse:
    form = await form_data(c.request)
    body = parse(ShareIn, {"kind": form.get("kind", ""), "subject": form.get("subject")})
    out = await workflow_engine(c.runtime).catalog.share(c.ctx, slug, body)
    return await _workflow_page(c, slug, message=f"Shared with {out.kind} {out.subject}.")


@router.post("/workflows/{slug}/shares/{share_id}/delete", response_class=HTMLResponse)
async def remove_share(slug: str, share_id: str, c: CallerDep) -> HTMLResponse:
    await workflow_engine(c.runtime).catalog.unshare(c.ctx, slug, share_id)
    return await _workflow_page(c, slug, message="Share removed.")
