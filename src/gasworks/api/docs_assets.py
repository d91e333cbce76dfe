"""The browser tools' own files (Swagger UI, ReDoc, GraphiQL), served from the app.

Strawberry's GraphiQL page and FastAPI's docs pages load their scripts from a CDN by default;
nothing gasworks serves may fetch from the internet, so the same builds are vendored in
``static/`` (see ``static/VENDORED.md``) and the pages point at them.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse

from gasworks.errors import ConfigurationError

#: where the vendored files are mounted
PREFIX = "/docs/assets"
DIRECTORY = Path(__file__).parent / "static"

#: strawberry's GraphiQL template URL → the vendored file (same versions, so the template's
#: subresource-integrity hashes still hold)
_GRAPHIQL_FILES = {
    "https://unpkg.com/react@18.2.0/umd/react.production.min.js": "react.production.min.js",
    "https://unpkg.com/react-dom@18.2.0/umd/react-dom.production.min.js": (
        "react-dom.production.min.js"
    ),
    "https://unpkg.com/js-cookie@3.0.5/dist/js.cookie.min.js": "js.cookie.min.js",
    "https://unpkg.com/graphiql@3.8.3/graphiql.min.css": "graphiql.min.css",
    "https://unpkg.com/graphiql@3.8.3/graphiql.min.js": "graphiql.min.js",
    "https://unpkg.com/@graphiql/plugin-explorer@1.0.2/dist/style.css": (
        "graphiql-plugin-explorer.css"
    ),
    "https://unpkg.com/@graphiql/plugin-explorer@1.0.2/dist/index.umd.js": (
        "graphiql-plugin-explorer.umd.js"
    ),
}
#: what the three pages may load: their own origin only (inline scripts and styles are the
#: tools' own page templates; ReDoc starts its search worker from a blob). A browser never
#: asks another host, not even for ReDoc's hard-coded remote logo (blocked, so it hides).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
    "connect-src 'self'; frame-ancestors 'self'"
)
_REMOTE = re.compile(r"""(?:src|href)="(https?://[^"]+)\"""")


def local_graphiql(html: str) -> str:
    """Strawberry's GraphiQL page with every script and style from :data:`PREFIX`.

    Raises when the template names a file that is not vendored (a strawberry upgrade that
    moved GraphiQL's version): refresh ``static/`` then, as ``VENDORED.md`` says.
    """
    for url, name in _GRAPHIQL_FILES.items():
        html = html.replace(f'"{url}"', f'"{PREFIX}/{name}"')
    remote = _REMOTE.findall(html)
    if remote:
        raise ConfigurationError(
            f"GraphiQL's page loads {remote[0]}, which is not vendored; "
            "refresh src/gasworks/api/static (see VENDORED.md there)"
        )
    return html


def page(html: str) -> HTMLResponse:
    """One of the tools' pages, under :data:`CONTENT_SECURITY_POLICY`."""
    return HTMLResponse(html, headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY})


def swagger_ui_html(title: str, openapi_url: str) -> str:
    html = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=title,
        swagger_js_url=f"{PREFIX}/swagger-ui-bundle.js",
        swagger_css_url=f"{PREFIX}/swagger-ui.css",
        swagger_favicon_url=f"{PREFIX}/favicon.png",
    )
    return bytes(html.body).decode()


def redoc_html(title: str, openapi_url: str) -> HTMLResponse:
    html = get_redoc_html(
        openapi_url=openapi_url,
        title=title,
        redoc_js_url=f"{PREFIX}/redoc.standalone.js",
        redoc_favicon_url=f"{PREFIX}/favicon.png",
        with_google_fonts=False,
    )
    return page(bytes(html.body).decode())
