# One image for the four services; the command picks what runs:
#   gvn migrate            (one-shot bootstrap: roles, schemas, migrations)
#   gvn serve <service>    (scouting | matching | crm | kpi)
# Build: docker build -t gvn-platform:dev .

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml ./
COPY shared ./shared
COPY services ./services
# Runtime dependencies only: the [dev] extra is never installed in the image.
RUN /opt/venv/bin/pip install .

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0
# A numeric user, so Kubernetes can verify runAsNonRoot.
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin gvn
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
USER 10001:10001
EXPOSE 8001 8002 8003 8004
CMD ["gvn", "serve", "scouting"]
