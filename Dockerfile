# The gateway image: the Python package, and the inbox sample built beside it.
FROM node:20-slim AS inbox
WORKDIR /src
COPY frontend-sample/package.json frontend-sample/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY frontend-sample/ ./
RUN npm run build

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN useradd --create-home --uid 10001 gateway
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway/ gateway/
RUN pip install --no-cache-dir .
COPY --from=inbox /src/dist /app/inbox
# On 0.0.0.0 the gateway needs SYSTEM_TOKEN (or ALLOW_OPEN_API=1 behind your own auth) to start.
ENV INBOX_DIR=/app/inbox HOST=0.0.0.0 PORT=8000 DATA_DIR=/home/gateway/data
USER gateway
EXPOSE 8000
# /health answers 200 only while the store answers too.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status != 200)"]
CMD ["messenger-gateway"]
