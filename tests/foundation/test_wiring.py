"""The wiring convention: domains listed in one place, started in order, stopped in reverse;
imports register nothing; two runtimes in one process keep their own services."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from gasworks.llm.runtime import get_gateway, get_registry
from gasworks.prompts.service import prompt_service
from gasworks.runtime import Runtime
from gasworks.wiring import build_runtime, default_domains
from gasworks.workflows import workflow_engine


class _Probe:
    def __init__(self, name: str, log: list[str], *, fail_stop: bool = False) -> None:
        self.name = name
        self.log = log
        self.fail_stop = fail_stop

    async def start(self, rt: Runtime) -> None:
        self.log.append(f"start {self.name}")
        rt.services[self.name] = self

    async def stop(self, rt: Runtime) -> None:
        self.log.append(f"stop {self.name}")
        rt.services.pop(self.name)
        if self.fail_stop:
            raise RuntimeError("boom")


async def test_domains_start_in_order_and_stop_in_reverse_even_when_one_fails(settings):
    log: list[str] = []
    a, b, c = _Probe("a", log), _Probe("b", log, fail_stop=True), _Probe("c", log)
    rt = Runtime(settings, domains=[a, b, c])
    await rt.start(migrate=False)
    assert rt.services == {"a": a, "b": b, "c": c}
    await rt.stop()
    assert log == ["start a", "start b", "start c", "stop c", "stop b", "stop a"]
    assert rt.services == {}


async def test_a_domain_that_fails_to_start_stops_the_ones_before_it(settings):
    log: list[str] = []

    class Broken(_Probe):
        async def start(self, rt: Runtime) -> None:
            raise RuntimeError("no")

    rt = Runtime(settings, domains=[_Probe("a", log), Broken("b", log), _Probe("c", log)])
    with pytest.raises(RuntimeError):
        await rt.start(migrate=False)
    assert log == ["start a", "stop a"]
    await rt.db.dispose()


def test_domain_names_are_unique(settings):
    log: list[str] = []
    with pytest.raises(ValueError, match="unique"):
        Runtime(settings, domains=[_Probe("a", log), _Probe("a", log)])


def test_the_default_domains_in_start_order(settings):
    assert [d.name for d in default_domains(settings)] == [
        "leadership",
        "models",
        "guardrails",
        "prompts",
        "retrieval",
        "documents",
        "retrieval-documents",
        "workflows",
    ]


async def test_two_runtimes_in_one_process_keep_their_own_services(settings, tmp_path):
    other_settings = settings.model_copy(update={"home": tmp_path / "other"})
    one, two = build_runtime(settings), build_runtime(other_settings)
    await one.start(migrate=False)
    await two.start(migrate=False)
    try:
        assert get_gateway(one) is not get_gateway(two)
        assert get_registry(one) is not get_registry(two)
        assert workflow_engine(one) is not workflow_engine(two)
        p1, p2 = prompt_service(one), prompt_service(two)
        assert p1.normalize is not p2.normalize  # the old process-wide normalizer
        # each runtime's normalizer reads its own registry
        alias: Any = "bedrock/" + get_registry(one).resolve(None).id
        assert p1.normalize(alias) == get_registry(one).resolve(None).id
    finally:
        await one.stop()
    # stopping one leaves the other whole
    assert "prompts" in two.services and "models" in two.services
    resolved = await prompt_service(two).resolver.resolve(tenant_id="t")
    assert resolved is not None
    await two.stop()


def _under(modules: set[str], *packages: str) -> set[str]:
    return {m for m in modules for p in packages if m == p or m.startswith(p + ".")}


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return set(out.split())


def test_importing_the_sdk_loads_nothing_of_the_server():
    loaded = _modules_after("import gasworks.client")
    server = _under(loaded, "sqlalchemy", "aiohttp", "fastapi", "gasworks.llm", "gasworks.db")
    assert server | _under(loaded, "gasworks.api") == set()


def test_cli_help_loads_nothing_of_the_server():
    code = (
        "import sys\nsys.argv = ['gasworks', '--help']\nfrom gasworks.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass"
    )
    loaded = _modules_after(code)
    heavy = ("sqlalchemy", "aiohttp", "fastapi", "pydantic", "httpx", "asyncio")
    server = {m for m in loaded if m.split(".")[0] in heavy}
    server |= {
        m for m in loaded if m.startswith(("gasworks.db", "gasworks.api", "gasworks.prompts"))
    }
    assert server == set()
