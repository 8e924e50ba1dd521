"""OpenTelemetry for nadir-extproc: one GenAI span per LLM request and the request metrics.

Rooms: ``names`` (every attribute/metric name), ``extract`` (what the processor copies from bodies
onto the ``Outcome``), ``context`` (parent trace context: Envoy's gRPC metadata, else a
``traceparent`` request header), ``spans`` and ``metrics`` (pure: ``Outcome`` in, span/records
out), ``providers`` (SDK set-up, OTLP gRPC export, Prometheus, drop counting).

Importing this package is cheap; ``providers`` (the SDK exporters) is imported only by the server.
Usage::

    from nadir_extproc.telemetry.providers import setup_telemetry
    tel = setup_telemetry(settings.telemetry)   # None when disabled
    ctx.add_on_complete(tel.record)
"""
