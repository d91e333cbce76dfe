"""`gasworks blobs …`: master key rotation and data-key re-wrapping."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from gasworks.cli.common import operator_only
from gasworks.cli.models import OperatorServerOpt
from gasworks.cli.output import JsonOpt, console, emit_json, progress, run

if TYPE_CHECKING:  # imported where used: `gasworks --help` loads none of the server
    from gasworks.settings import Settings


blobs_app = typer.Typer(
    rich_markup_mode=None, help="Blob store and its encryption keys.", no_args_is_help=True
)


async def _rewrap(settings: Settings, retire: bool) -> dict[str, Any]:
    from gasworks.blobs import open_blob_store
    from gasworks.blobs.keys import retire_unused_keys

    store = open_blob_store(settings)
    report = await store.rewrap()
    retired: list[str] = []
    if retire and not report.failed:
        retired = retire_unused_keys(settings, report.key_ids_in_use)
    return {
        "currentKeyId": store.keyring.current_id,
        "rewrapped": report.rewrapped,
        "alreadyCurrent": report.already_current,
        "failed": report.failed,
        "retiredKeyIds": retired,
    }


def _print(out: dict[str, Any]) -> None:
    console.print(
        f"current key {out['currentKeyId']}: re-wrapped {out['rewrapped']}, "
        f"already current {out['alreadyCurrent']}, failed {len(out['failed'])}, "
        f"retired keys {', '.join(out['retiredKeyIds']) or 'none'}"
    )


@blobs_app.command("rotate-key")
def rotate_key(server: OperatorServerOpt = None, as_json: JsonOpt = False) -> None:
    """New master key under GASWORKS_HOME/keys, then re-wrap every data key.

    The old key stays (as keys/master-<id>.key) because running servers keep writing with it
    until restarted; after restarting them run `gasworks blobs rewrap --retire`."""
    from gasworks.blobs import rotate_master_key
    from gasworks.settings import Settings

    operator_only(server, "blobs rotate-key")
    settings = Settings()

    async def body() -> dict[str, Any]:
        old, _new = rotate_master_key(settings)
        return {"previousKeyId": old, **(await _rewrap(settings, retire=False))}

    with progress("Rotating the master key and re-wrapping every data key…", as_json):
        out = run(body, as_json)
    emit_json(out) if as_json else _print(out)


@blobs_app.command("rewrap")
def rewrap(
    retire: bool = typer.Option(False, help="Delete retired key files no blob uses any more."),
    server: OperatorServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-wrap every data key under the current master key (idempotent, resumable)."""
    from gasworks.settings import Settings

    operator_only(server, "blobs rewrap")

    settings = Settings()
    with progress("Re-wrapping every data key…", as_json):
        out = run(lambda: _rewrap(settings, retire), as_json)
    emit_json(out) if as_json else _print(out)
