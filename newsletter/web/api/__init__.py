"""The JSON API under ``/api/v1`` (bearer keys, roles), plus the probes and
metrics that machines ask for (``/healthz``, ``/readyz``, ``/metrics``)."""
