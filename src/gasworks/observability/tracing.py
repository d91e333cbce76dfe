"""OpenTelemetry tracing: a tracer provider, an OTLP/HTTP exporter when configured."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

if TYPE_CHECKING:
    from fastapi import FastAPI

    from gasworks.settings import Settings

_configured = False


def configure_tracing(app: FastAPI, settings: Settings) -> bool:
    """Instrument the app; export spans when ``GASWORKS_OTEL_EXPORTER_OTLP_ENDPOINT`` is set.

    Returns whether spans are exported. Instrumentation without an exporter costs little and
    keeps trace ids flowing from incoming ``traceparent`` headers into logs.
    """
    global _configured
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    exporting = False
    if not _configured:
        provider = TracerProvider(
            resource=Resource.create({"service.name": settings.otel_service_name})
        )
        if settings.otel_exporter_otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
            exporting = True
        trace.set_tracer_provider(provider)
        _configured = True
    FastAPIInstrumentor.instrument_app(
        app, excluded_urls="healthz,readyz,metrics", exclude_spans=["receive", "send"]
    )
    return exporting


def tracer() -> trace.Tracer:
    return trace.get_tracer("gasworks")
