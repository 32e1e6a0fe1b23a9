# The crm image: `crm serve` by default (docker-compose.yml also runs `crm project`).
# Python 3.11, the version requirements.lock was made with.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Dependencies first, from the lock only, so that a code change reuses this layer.
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock
COPY pyproject.toml README.md ./
COPY domain domain
COPY application application
COPY projections projections
COPY adapters adapters
COPY api api
COPY examples examples
RUN pip install --no-cache-dir --no-deps . && rm -rf /src

# A fixed, non-root uid owning the data directory: the default SQLite store
# (./crm.db) and its key file (./crm.key) are written there.
RUN groupadd --system --gid 10001 crm \
    && useradd --system --uid 10001 --gid crm --home-dir /data --no-create-home crm \
    && mkdir /data && chown crm:crm /data
WORKDIR /data
VOLUME /data
USER crm

ENV CRM_HOST=0.0.0.0
EXPOSE 8000
ENTRYPOINT ["crm"]
CMD ["serve"]
