# Production image: `newsletter serve` (web) or `newsletter worker` (delivery).
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
# The same lock as `make dev`: uv.lock's versions and hashes, without the dev extra.
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_NO_CACHE=1
COPY requirements-uv.txt ./
RUN pip install --no-cache-dir --no-deps --require-hashes -r requirements-uv.txt
COPY pyproject.toml uv.lock README.md ./
# Dependencies first, in their own layer: a code change does not reinstall them.
RUN uv sync --locked --no-install-project --no-editable
COPY newsletter ./newsletter
COPY sql ./sql
COPY templates ./templates
COPY static ./static
RUN uv sync --locked --no-editable

FROM python:3.11-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NEWSLETTER_SQL_DIR=/app/sql \
    NEWSLETTER_TEMPLATES_DIR=/app/templates \
    NEWSLETTER_STATIC_DIR=/app/static
RUN groupadd --system --gid 10001 newsletter \
    && useradd --system --uid 10001 --gid newsletter --home-dir /app --no-create-home newsletter
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY --chown=root:root sql ./sql
COPY --chown=root:root templates ./templates
COPY --chown=root:root static ./static
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
ENTRYPOINT ["newsletter"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
