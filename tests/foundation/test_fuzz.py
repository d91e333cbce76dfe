"""schemathesis over the whole OpenAPI document against a real server (``gasworks serve``
on loopback), on both databases: no generated request gets a 5xx, an undocumented status
code or an undocumented content type. Bounded (the ``quick`` profile, a fixed seed); ``make
fuzz`` runs the deep profile."""

from __future__ import annotations

import asyncio

import pytest

from gasworks.testing.fuzz import PROFILES, run


@pytest.mark.slow
@pytest.mark.timeout(900)  # about a minute per database on an idle reference machine
async def test_schemathesis_finds_no_failure(db_url, admin_key, tmp_path) -> None:
    result = await asyncio.to_thread(run, db_url, tmp_path, PROFILES["quick"], admin_key)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-8000:]
    assert " passed" in report and "generated" in report
