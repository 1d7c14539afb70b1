# Production image: `newsletter serve` (web) or `newsletter worker` (delivery).
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md ./
COPY newsletter ./newsletter
COPY sql ./sql
COPY templates ./templates
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir .

FROM python:3.11-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NEWSLETTER_SQL_DIR=/app/sql \
    NEWSLETTER_TEMPLATES_DIR=/app/templates
RUN groupadd --system --gid 10001 newsletter \
    && useradd --system --uid 10001 --gid newsletter --home-dir /app --no-create-home newsletter
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY --chown=root:root sql ./sql
COPY --chown=root:root templates ./templates
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
ENTRYPOINT ["newsletter"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
