"""OpenTelemetry tracing: a tracer provider, an OTLP/HTTP exporter when configured.

The process-wide provider is built once and installed as the OpenTelemetry global (which can
be set only once per process). An app may instead be given its own provider (tests pass one
with an in-memory exporter); ``tracer()`` then hands out tracers of the provider configured
last, so spans made by gasworks code nest under the request span of that app.
"""

from __future__ import annotations

import contextlib
import inspect
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

if TYPE_CHECKING:
    from fastapi import FastAPI

    from gasworks.settings import Settings

_global: TracerProvider | None = None
_exporting = False
_current: trace.TracerProvider | None = None
#: whether the process-wide provider was installed as the OpenTelemetry global
_installed = False
#: whether gasworks' own spans (provider calls, workflow nodes, prompt resolution) are made:
#: only when requests are traced, so an untraced deployment pays one boolean test per span
_recording = False

#: Probes and scrapes are not traced.
EXCLUDED_URLS = "healthz,readyz,metrics"


def build_provider(settings: Settings) -> tuple[TracerProvider, bool]:
    """A provider for this service; with an OTLP/HTTP exporter when an endpoint is set."""
    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.otel_service_name})
    )
    if not settings.otel_exporter_otlp_endpoint:
        return provider, False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider, True


def configure_tracing(
    app: FastAPI, settings: Settings, provider: trace.TracerProvider | None = None
) -> bool:
    """Instrument the app; returns whether spans are exported over OTLP.

    Without ``provider``, the process-wide provider is used (built on first call). Requests
    are instrumented when spans go somewhere: an OTLP exporter is configured, a provider is
    given (tests, embedding applications), or ``GASWORKS_OTEL_ALWAYS_INSTRUMENT`` is set;
    otherwise the ~0.3 ms per request of spans nobody reads is not spent. The process-wide
    provider becomes the OpenTelemetry global only then: FastAPI ≥ 0.130 traces every request
    by itself as soon as a global SDK provider exists, and gasworks turns that native
    telemetry off (``native_telemetry_off``) so that one instrumentation, this one, decides.
    """
    global _global, _exporting, _current, _installed, _recording
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    exporting = False
    explicit = provider is not None
    if provider is None:
        if _global is None:
            _global, _exporting = build_provider(settings)
        provider, exporting = _global, _exporting
    _current = provider
    _recording = bool(explicit or exporting or settings.otel_always_instrument)
    if not _recording:
        return False
    if not explicit and not _installed:
        trace.set_tracer_provider(provider)  # once per process (OpenTelemetry's rule)
        _installed = True
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        excluded_urls=EXCLUDED_URLS,
        exclude_spans=["receive", "send"],
    )
    return exporting


def native_telemetry_off() -> dict[str, Any]:
    """``FastAPI(**native_telemetry_off())``: no FastAPI-native spans, metrics or logs.

    Newer FastAPI versions trace, meter and log every request on their own whenever a global
    OpenTelemetry provider is configured (by gasworks or by an embedding application); that
    would double gasworks' own instrumentation or spend time on spans nobody asked for.
    Older versions have no such option and need nothing.
    """
    from fastapi import FastAPI

    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}  # pragma: no cover - FastAPI without native telemetry
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}


def tracer() -> trace.Tracer:
    """The gasworks tracer (of the provider configured last, else the global one)."""
    return trace.get_tracer("gasworks", tracer_provider=_current)


def recording() -> bool:
    """Whether gasworks makes its own spans (requests are traced)."""
    return _recording


def span(name: str, **attributes: str | int | float | bool | None) -> AbstractContextManager[Any]:
    """A span of gasworks' own work under the current one; attributes that are None are
    left out. A no-op context when requests are not traced."""
    if not _recording:
        return contextlib.nullcontext()
    attrs = {f"gasworks.{k}": v for k, v in attributes.items() if v is not None}
    return tracer().start_as_current_span(name, attributes=attrs)
