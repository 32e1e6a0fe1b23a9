FROM python:3.12-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY domain domain
COPY application application
COPY projections projections
COPY adapters adapters
COPY api api
COPY examples examples
RUN pip install --no-cache-dir .
USER nobody
ENTRYPOINT ["crm"]
