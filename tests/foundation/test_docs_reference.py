"""The committed reference docs match the code (settings, routes, CLI, error codes)."""

from __future__ import annotations

from tests.foundation._scripts import ROOT, load_script


def _gen_docs():
    return load_script("gen_docs")


def test_reference_docs_are_current():
    gen = _gen_docs()
    rendered = gen.render_all()
    stale = gen.stale(rendered)
    assert not stale, (
        f"stale generated docs: {[str(p.relative_to(ROOT)) for p in stale]}; "
        "run `make docs` and commit docs/reference/"
    )


def test_reference_covers_every_route_command_setting_and_code():
    from gasworks.errors import error_codes
    from gasworks.settings import Settings

    gen = _gen_docs()
    rendered = {p.name: text for p, text in gen.render_all().items()}
    for name in Settings.model_fields:
        assert f"`GASWORKS_{name.upper()}`" in rendered["settings.md"]
    for code in error_codes():
        assert f"`{code}`" in rendered["errors.md"]
    for command in ("gasworks init", "gasworks keys revoke", "gasworks db upgrade"):
        assert f"`{command}`" in rendered["cli.md"]
    assert "`/api/keys/{key_id}/revoke`" in rendered["api.md"]
