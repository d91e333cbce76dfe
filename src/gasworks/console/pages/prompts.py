"""Prompts: scopes and pointers, versions with a side-by-side diff, deploy / roll back (a
compare-and-set conflict shows the current state and a retry), canaries, history, audit,
dead letters with replay, and a resolve preview."""

from __future__ import annotations

import difflib
import json
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from gasworks.console.web import (
    SEARCH_WINDOW,
    Caller,
    CallerDep,
    ConsoleRoute,
    form_data,
    listing,
    parse,
    render,
)
from gasworks.db.paging import Page
from gasworks.errors import NotFound, PromptPointerConflict, ValidationFailed
from gasworks.prompts.schemas import (
    CanaryDecision,
    CanaryRequest,
    MoveRequest,
    PointerOut,
    ResolveRequest,
    RollbackRequest,
    ScopeIn,
    VersionCreate,
    VersionOut,
)
from gasworks.prompts.service import prompt_service

router = APIRouter(route_class=ConsoleRoute)

TABS = (
    ("pointers", "Scopes", "/console/prompts"),
    ("versions", "Versions", "/console/prompts/versions"),
    ("dead-letters", "Dead letters", "/console/prompts/dead-letters"),
    ("audit", "Audit", "/console/prompts/audit"),
    ("resolve", "Resolve preview", "/console/prompts/resolve"),
)


def _page(c: Caller, template: str, tab: str, **ctx: Any) -> HTMLResponse:
    return render(c, template, active="prompts", title="Prompts", tabs=TABS, tab=tab, **ctx)


def scope_of(data: dict[str, str]) -> ScopeIn:
    return parse(
        ScopeIn,
        {
            "model": data.get("model", ""),
            "workflowId": data.get("workflowId") or None,
            "tenantScoped": data.get("tenantScoped", "true") != "false",
        },
    )


def scope_url(scope: ScopeIn) -> str:
    q = {"model": scope.model, "tenantScoped": str(scope.tenant_scoped).lower()}
    if scope.workflow_id:
        q["workflowId"] = scope.workflow_id
    return "/console/prompts/scope?" + urlencode(q)


def pointer_scope(p: PointerOut) -> ScopeIn:
    return ScopeIn(
        model=p.model, workflow_id=p.workflow_id, tenant_scoped=p.scope_tenant is not None
    )


# --- scopes ---------------------------------------------------------------------------------


@router.get("/prompts", response_class=HTMLResponse)
async def pointers_page(c: CallerDep) -> HTMLResponse:
    svc = prompt_service(c.runtime)
    pointers = await svc.list_pointers(c.ctx, SEARCH_WINDOW)
    rows = listing(
        pointers, c.request, lambda p: (p.model, p.workflow_id, p.level, p.active_version_id)
    )
    versions = await svc.list_versions(c.ctx, page=SEARCH_WINDOW)
    return _page(
        c,
        "prompts_pointers.html",
        "pointers",
        people=await c.people(p.updated_by for p in rows.rows),
        pointers=rows,
        versions=versions,
        scope_url=lambda p: scope_url(pointer_scope(p)),
    )


async def _scope_page(
    c: Caller,
    scope: ScopeIn,
    *,
    message: str | None = None,
    conflict: dict[str, Any] | None = None,
    attempted: dict[str, str] | None = None,
) -> HTMLResponse:
    svc = prompt_service(c.runtime)
    try:
        pointer: PointerOut | None = await svc.get_pointer(c.ctx, scope)
    except NotFound:
        pointer = None
    history = await svc.history(c.ctx, scope, Page(50, 0)) if pointer else []
    audit = await svc.audit(c.ctx, pointer.id, Page(50, 0)) if pointer else []
    versions = await svc.list_versions(c.ctx, page=SEARCH_WINDOW)
    names = {v.id: f"{v.name} v{v.number}" for v in versions}
    return _page(
        c,
        "prompts_scope.html",
        "pointers",
        scope=scope,
        pointer=pointer,
        history=history,
        audit=audit,
        people=await c.people(
            [pointer.updated_by if pointer else None],
            (h.actor for h in history),
            (a.actor for a in audit),
        ),
        versions=versions,
        names=names,
        message=message,
        conflict=conflict,
        attempted=attempted or {},
        push_url=scope_url(scope),
    )


@router.get("/prompts/scope", response_class=HTMLResponse)
async def scope_page(c: CallerDep) -> HTMLResponse:
    return await _scope_page(c, scope_of(dict(c.request.query_params)))


@router.post("/prompts/scope/{action}", response_class=HTMLResponse)
async def pointer_action(action: str, c: CallerDep) -> HTMLResponse:
    """deploy (move), rollback, canary, promote, abort: each a compare-and-set on
    ``expectedVersion``; a conflict re-renders the scope with the current state and a retry."""
    form = await form_data(c.request)
    scope = scope_of(form)
    svc = prompt_service(c.runtime)
    common = {
        "scope": scope.model_dump(by_alias=True),
        "expectedVersion": form.get("expectedVersion", ""),
        "reason": form.get("reason", ""),
    }
    try:
        if action == "deploy":
            p = await svc.move(
                c.ctx, parse(MoveRequest, {**common, "versionId": form.get("versionId", "")})
            )
            said = f"Deployed {p.active_version_id} (pointer version {p.version})."
        elif action == "rollback":
            p = await svc.rollback(c.ctx, parse(RollbackRequest, common))
            said = f"Rolled back to {p.active_version_id} (pointer version {p.version})."
        elif action == "canary":
            req = parse(
                CanaryRequest,
                {
                    **common,
                    "versionId": form.get("versionId", ""),
                    "percent": form.get("percent", ""),
                },
            )
            p = await svc.start_canary(c.ctx, req)
            said = f"Canary {p.canary_version_id} gets {p.canary_percent}% of conversations."
        elif action in ("promote", "abort"):
            p = await svc.decide_canary(
                c.ctx, parse(CanaryDecision, common), promote=action == "promote"
            )
            said = "Canary promoted." if action == "promote" else "Canary stopped."
        else:
            raise NotFound("No such pointer action.", details={"action": action})
    except PromptPointerConflict as exc:
        return await _scope_page(
            c,
            scope,
            conflict={"action": action, **exc.details, "message": exc.message},
            attempted=form,
        )
    return await _scope_page(c, scope, message=said)


# --- versions -------------------------------------------------------------------------------


@router.get("/prompts/versions", response_class=HTMLResponse)
async def versions_page(c: CallerDep) -> HTMLResponse:
    svc = prompt_service(c.runtime)
    archived = c.request.query_params.get("archived") == "1"
    versions = await svc.list_versions(c.ctx, include_archived=archived, page=SEARCH_WINDOW)
    rows = listing(
        versions, c.request, lambda v: (v.name, v.id, v.author, v.message, v.content_hash)
    )
    return _page(c, "prompts_versions.html", "versions", versions=rows, all_versions=versions)


@router.post("/prompts/versions", response_class=HTMLResponse)
async def create_version(c: CallerDep) -> HTMLResponse:
    form = await form_data(c.request)
    content: dict[str, Any] = {k: form[k] for k in ("system", "user") if k in form}
    if form.get("parameters"):
        content["parameters"] = _json(form["parameters"], "parameters")
    body = parse(
        VersionCreate,
        {"name": form.get("name", ""), "content": content, "message": form.get("message", "")},
    )
    out = await prompt_service(c.runtime).create_version(c.ctx, body)
    said = (
        f"Saved {out.name} v{out.number}."
        if out.created
        else f"Same content as {out.name} v{out.number}: nothing new saved."
    )
    return await _version_page(c, out.id, message=said)


def _json(raw: str, field: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ValidationFailed(
            f"{field} is not valid JSON: {exc}.", details={"field": field}
        ) from None


def content_lines(v: VersionOut) -> list[str]:
    """A version's content as readable lines (what the side-by-side diff compares)."""
    c = v.content
    out: list[str] = []
    if c.messages is not None:
        for m in c.messages:
            out += [f"[{m.role}]", *m.content.splitlines(), ""]
    for part in ("system", "user"):
        text = getattr(c, part)
        if text is not None:
            out += [f"[{part}]", *text.splitlines(), ""]
    if c.parameters:
        out += ["[parameters]", *json.dumps(c.parameters, indent=2, sort_keys=True).splitlines()]
    return out


def side_by_side(a: list[str], b: list[str]) -> list[tuple[str, str, str]]:
    """(kind, left, right) rows: equal / del / add / change."""
    rows: list[tuple[str, str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            rows += [("equal", x, x) for x in a[i1:i2]]
            continue
        left, right = a[i1:i2], b[j1:j2]
        for k in range(max(len(left), len(right))):
            lt = left[k] if k < len(left) else None
            rt = right[k] if k < len(right) else None
            kind = (
                "change" if lt is not None and rt is not None else ("del" if rt is None else "add")
            )
            rows.append((kind, lt or "", rt or ""))
    return rows


async def _version_page(c: Caller, version_id: str, *, message: str | None = None) -> HTMLResponse:
    svc = prompt_service(c.runtime)
    v = await svc.get_version(c.ctx, version_id)
    siblings = await svc.list_versions(
        c.ctx, name=v.name, include_archived=True, page=SEARCH_WINDOW
    )
    other_id = c.request.query_params.get("compare")
    if other_id is None:
        older = [s for s in siblings if s.number < v.number]
        other_id = older[0].id if older else None
    diff = None
    audit = await svc.audit(c.ctx, v.id, Page(20, 0))
    other = None
    if other_id:
        other = await svc.get_version(c.ctx, other_id)
        await svc.diff(c.ctx, other.id, v.id)  # the API's own check (same tenant, hash-verified)
        diff = side_by_side(content_lines(other), content_lines(v))
    return _page(
        c,
        "prompts_version.html",
        "versions",
        v=v,
        siblings=siblings,
        other=other,
        diff=diff,
        message=message,
        audit=audit,
        people=await c.people(a.actor for a in audit),
        push_url=f"/console/prompts/versions/{v.id}",
    )


@router.get("/prompts/versions/{version_id}", response_class=HTMLResponse)
async def version_page(version_id: str, c: CallerDep) -> HTMLResponse:
    return await _version_page(c, version_id)


# --- dead letters, audit, resolve -----------------------------------------------------------


async def _dead_letters(c: Caller, message: str | None = None) -> HTMLResponse:
    status = c.request.query_params.get("status") or None
    items = await prompt_service(c.runtime).dead_letters(c.ctx, status, SEARCH_WINDOW)
    rows = listing(
        items,
        c.request,
        lambda d: (d.operation, d.reason_code, d.error, d.status, d.actor),
        extra={"status": status or ""},
    )
    return _page(
        c,
        "prompts_dead_letters.html",
        "dead-letters",
        items=rows,
        status=status,
        message=message,
        push_url="/console/prompts/dead-letters",
    )


@router.get("/prompts/dead-letters", response_class=HTMLResponse)
async def dead_letters_page(c: CallerDep) -> HTMLResponse:
    return await _dead_letters(c)


@router.post("/prompts/dead-letters/{dl_id}/replay", response_class=HTMLResponse)
async def replay(dl_id: str, c: CallerDep) -> HTMLResponse:
    form = await form_data(c.request)
    out = await prompt_service(c.runtime).replay(c.ctx, dl_id, rebase=form.get("rebase") == "on")
    return await _dead_letters(c, f"Replayed {dl_id}: {out.dead_letter.status}.")


@router.get("/prompts/audit", response_class=HTMLResponse)
async def audit_page(c: CallerDep) -> HTMLResponse:
    items = await prompt_service(c.runtime).audit(
        c.ctx, c.request.query_params.get("objectId") or None, SEARCH_WINDOW
    )
    people = await c.people(a.actor for a in items)
    rows = listing(
        items,
        c.request,
        lambda a: (
            people.get(a.actor),
            a.actor,
            a.action,
            a.object_type,
            a.object_id,
            json.dumps(a.details),
        ),
    )
    return _page(c, "prompts_audit.html", "audit", items=rows, people=people)


@router.get("/prompts/resolve", response_class=HTMLResponse)
async def resolve_page(c: CallerDep) -> HTMLResponse:
    q = dict(c.request.query_params)
    resolved = None
    if q.get("model"):
        req = parse(
            ResolveRequest,
            {
                "model": q["model"],
                "workflowId": q.get("workflowId") or None,
                "conversationId": q.get("conversationId") or None,
                "variables": _json(q["variables"], "variables") if q.get("variables") else {},
            },
        )
        resolved = await prompt_service(c.runtime).resolve(c.ctx, req)
    return _page(c, "prompts_resolve.html", "resolve", q=q, resolved=resolved)
