"""Tenants, principals, API keys, roles and the caller's tenant context."""

from gasworks.tenancy.context import Role, TenantContext

__all__ = ["Role", "TenantContext"]
