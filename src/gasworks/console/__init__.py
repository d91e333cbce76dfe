"""The web console: server-rendered pages (Jinja2 + htmx) at ``/console``.

An adapter like ``api/``: every page calls the same service functions as the REST routes,
with the caller's ``TenantContext`` from a browser session, so the console can show and do
nothing the API would refuse. Static files (htmx, uPlot, the stylesheet) ship in the package.
"""

from gasworks.console.app import create_web_app, install_console

__all__ = ["create_web_app", "install_console"]
