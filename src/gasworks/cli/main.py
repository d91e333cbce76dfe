"""Entry point of the ``gasworks`` command. Every command takes ``--json``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from gasworks import __version__
from gasworks.cli import (
    blobs,
    documents,
    documents_ops,
    embeddings,
    guardrails,
    models,
    prompts,
    search,
    tenancy,
    workflows,
)
from gasworks.cli.common import operator_only
from gasworks.cli.models import OperatorServerOpt
from gasworks.cli.output import (
    GasworksGroup,
    JsonOpt,
    console,
    emit_json,
    esc,
    fail,
    plain,
    progress,
    run,
)

if TYPE_CHECKING:
    from gasworks.settings import Settings

app = typer.Typer(
    rich_markup_mode=None,
    name="gasworks",
    help="gasworks: models, prompts and workflows as infrastructure.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    pretty_exceptions_enable=False,
    # no traceback ever: every failure is one line with a stable code (output.GasworksGroup)
    cls=GasworksGroup,
)
db_app = typer.Typer(rich_markup_mode=None, help="Database schema.", no_args_is_help=True)
config_app = typer.Typer(rich_markup_mode=None, help="Configuration.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")
app.add_typer(tenancy.tenants_app, name="tenants")
app.add_typer(tenancy.keys_app, name="keys")
app.add_typer(guardrails.breakers_app, name="breakers")
app.add_typer(guardrails.budgets_app, name="budgets")
app.add_typer(guardrails.usage_app, name="usage")
app.command("init")(tenancy.init)
app.add_typer(workflows.workflows_app, name="workflows")
app.add_typer(models.models_app, name="models")
app.command("chat")(models.chat)
app.command("embed")(embeddings.embed)
app.command("search")(search.search)
app.add_typer(prompts.prompts_app, name="prompts")
app.add_typer(blobs.blobs_app, name="blobs")
app.add_typer(documents.documents_app, name="documents")
documents.documents_app.command("queue")(documents_ops.queue_cmd)
documents.documents_app.command("audit")(documents_ops.audit_cmd)
app.command("worker")(documents.worker_cmd)


def _print_version(value: bool) -> None:
    if value:
        console.print(f"gasworks {__version__}", markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def _setup(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Logs go to stderr (warnings and up) so that stdout carries only the command's output;
    they are JSON under --json (or GASWORKS_LOG_FORMAT=json), readable lines otherwise."""
    from gasworks.observability.logging import configure_logging
    from gasworks.settings import LogFormat

    settings = load_settings()
    as_json = bool(ctx.meta.get("gasworks.json")) or settings.log_format is LogFormat.JSON
    configure_logging(json=as_json, level="WARNING")


@app.command()
def version(as_json: JsonOpt = False) -> None:
    """Print the version."""
    if as_json:
        emit_json({"version": __version__})
    else:
        console.print(f"gasworks {__version__}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (GASWORKS_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (GASWORKS_PORT).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
    no_worker: Annotated[
        bool,
        typer.Option(
            "--no-worker",
            help="API only: run no background work here (sets GASWORKS_BACKGROUND_WORK=false; "
            "another process of the deployment must run it).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Start the API server (migrates the database first when GASWORKS_AUTO_MIGRATE)."""
    import asyncio
    import os

    import uvicorn

    if no_worker:  # read by the app factory in each uvicorn worker process
        os.environ["GASWORKS_BACKGROUND_WORK"] = "false"

    from gasworks.runtime import Runtime

    settings = load_settings()
    bind_host, bind_port = host or settings.host, port or settings.port
    n = workers or settings.workers

    async def prepare() -> tuple[str, bool]:
        from gasworks.tenancy.service import tenancy_service

        rt = Runtime(settings)
        try:
            await rt.start(migrate=settings.auto_migrate)
            initialized = await tenancy_service(rt).has_tenants()
            return rt.db.dialect.name, initialized
        finally:
            await rt.stop()

    with progress("Preparing the database (migrations)…", as_json):
        dialect, initialized = run(prepare, as_json)
    url = f"http://{bind_host}:{bind_port}"
    if as_json:
        emit_json(
            {
                "url": url,
                "database": dialect,
                "workers": n,
                "initialized": initialized,
                "backgroundWork": not no_worker and settings.background_work,
            }
        )
    else:
        console.print(
            f"gasworks {__version__} on [bold]{url}[/] "
            f"({dialect}, {n} worker{'s' if n > 1 else ''}); "
            "console at /console, docs at /docs, GraphQL at /graphql"
        )
        if not initialized:
            console.print(
                "No tenant yet: in another terminal run [bold]gasworks init[/] "
                "(from a source checkout: [bold].venv/bin/gasworks init[/]) "
                "to create one and print an admin key."
            )
    asyncio.set_event_loop(None)
    from gasworks.cli.server import GracefulServer

    config = uvicorn.Config(
        "gasworks.console.app:create_web_app",  # the API with the console on top
        factory=True,
        host=bind_host,
        port=bind_port,
        workers=n,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=settings.server_keepalive_seconds,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) or None,
    )
    server = GracefulServer(
        config,
        grace=settings.shutdown_grace_seconds,
        readiness_delay=settings.shutdown_readiness_delay_seconds,
    )
    if n > 1:
        # uvicorn's supervisor builds a plain server per worker process: the grace period
        # applies, the readiness delay and the final stream event do not (docs/operations.md)
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=[config.bind_socket()]).run()
    else:
        server.run()


@db_app.command("upgrade")
def db_upgrade(server: OperatorServerOpt = None, as_json: JsonOpt = False) -> None:
    """Upgrade the database schema to the newest revision (safe to run concurrently)."""
    from gasworks.db.engine import Database

    operator_only(server, "db upgrade")

    settings = load_settings()

    async def body() -> dict[str, str]:
        db = Database(settings.resolved_database_url)
        try:
            rev = await db.upgrade()
            return {"revision": rev, "database": db.dialect.name}
        finally:
            await db.dispose()

    with progress("Upgrading the database schema…", as_json):
        out = run(body, as_json)
    if as_json:
        emit_json(out)
    else:
        console.print(f"Database ({out['database']}) is at revision [bold]{out['revision']}[/].")


@db_app.command("current")
def db_current(server: OperatorServerOpt = None, as_json: JsonOpt = False) -> None:
    """Show the schema revision of the database and the newest one this version knows."""
    from gasworks.db.engine import Database
    from gasworks.db.migrate import current_revision, head_revision

    operator_only(server, "db current")

    settings = load_settings()

    async def body() -> dict[str, str | None]:
        db = Database(settings.resolved_database_url)
        try:
            return {"current": await current_revision(db), "head": head_revision()}
        finally:
            await db.dispose()

    out = run(body, as_json)
    if as_json:
        emit_json(out)
    else:
        console.print(f"current: {out['current'] or '(empty database)'}; head: {out['head']}")


@config_app.command("show")
def config_show(as_json: JsonOpt = False) -> None:
    """Print the effective settings (secrets masked)."""
    data = load_settings().public_dict()
    if as_json:
        emit_json(data)
    else:
        for k, v in data.items():
            console.print(f"[bold]{k}[/] = {esc(plain(v))}", highlight=False)


def load_settings() -> Settings:
    """Settings from env and config file; a bad value is a clean error (exit 1), not a trace."""
    from pydantic import ValidationError

    from gasworks.errors import ConfigurationError
    from gasworks.settings import Settings
    from gasworks.validation import validation_failed

    try:
        return Settings()
    except ConfigurationError as exc:
        fail(exc, as_json=False)
    except ValidationError as exc:
        bad = validation_failed(exc.errors())
        fail(ConfigurationError(f"Bad setting: {bad.message}", details=bad.details), False)
    raise AssertionError("unreachable")


def main() -> None:
    app()
