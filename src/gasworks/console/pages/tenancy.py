"""Tenants and keys: tenants (platform admins), principals and API keys of the caller's
tenant (admins and owners): create, revoke, expiry; a new key is shown once."""

from __future__ import annotations

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
from gasworks.tenancy.context import Role
from gasworks.tenancy.schemas import ApiKeyCreate, ApiKeyCreated, PrincipalCreate, TenantCreate
from gasworks.tenancy.service import tenancy_service

router = APIRouter(route_class=ConsoleRoute)


async def _page(
    c: Caller, *, message: str | None = None, created: ApiKeyCreated | None = None
) -> HTMLResponse:
    c.ctx.require(Role.ADMIN)  # the same check as listing keys over the API
    svc = tenancy_service(c.runtime)
    tenants = await svc.list_tenants(c.ctx, SEARCH_WINDOW)
    principals = await svc.list_principals(c.ctx, SEARCH_WINDOW)
    keys = await svc.list_api_keys(c.ctx, SEARCH_WINDOW)
    names = {p.id: p.name for p in principals}
    return render(
        c,
        "tenancy.html",
        active="tenancy",
        title="Tenants & keys",
        message=message,
        created=created,
        tenants=listing(
            tenants, c.request, lambda t: (t.name, t.display_name, t.id), page_param="tpage"
        ),
        principals=listing(
            principals,
            c.request,
            lambda p: (p.name, p.role.value, p.kind, p.id),
            page_param="ppage",
        ),
        keys=listing(
            keys,
            c.request,
            lambda k: (k.name, k.prefix, names.get(k.principal_id), k.id),
            page_param="kpage",
        ),
        names=names,
        roles=[r.value for r in Role],
        push_url="/console/tenancy",
    )


@router.get("/tenancy", response_class=HTMLResponse)
async def tenancy_page(c: CallerDep) -> HTMLResponse:
    return await _page(c)


@router.post("/tenancy/tenants", response_class=HTMLResponse)
async def create_tenant(c: CallerDep) -> HTMLResponse:
    form = await form_data(c.request)
    body = parse(
        TenantCreate, {"name": form.get("name", ""), "displayName": form.get("displayName")}
    )
    out = await tenancy_service(c.runtime).create_tenant(c.ctx, body)
    return await _page(c, message=f"Created tenant {out.name}.")


@router.post("/tenancy/principals", response_class=HTMLResponse)
async def create_principal(c: CallerDep) -> HTMLResponse:
    form = await form_data(c.request)
    body = parse(
        PrincipalCreate,
        {
            "name": form.get("name", ""),
            "kind": form.get("kind", "user"),
            "role": form.get("role", "viewer"),
        },
    )
    out = await tenancy_service(c.runtime).create_principal(c.ctx, body)
    return await _page(c, message=f"Created {out.kind} {out.name} ({out.role.value}).")


@router.post("/tenancy/keys", response_class=HTMLResponse)
async def create_key(c: CallerDep) -> HTMLResponse:
    form = await form_data(c.request)
    expires = form.get("expiresAt")
    body = parse(
        ApiKeyCreate,
        {
            "name": form.get("name", "api key"),
            "role": form.get("role", "viewer"),
            "principalId": form.get("principalId"),
            # a datetime-local field has no zone: the page says it is UTC
            "expiresAt": f"{expires}Z" if expires and len(expires) <= 16 else expires,
        },
    )
    created = await tenancy_service(c.runtime).create_api_key(c.ctx, body)
    return await _page(c, created=created)


@router.post("/tenancy/keys/{key_id}/revoke", response_class=HTMLResponse)
async def revoke_key(key_id: str, c: CallerDep) -> HTMLResponse:
    out = await tenancy_service(c.runtime).revoke_api_key(c.ctx, key_id)
    return await _page(c, message=f"Revoked key {out.name} ({out.prefix}).")
