# The gateway image: the Python package, with the inbox and GraphiQL built into it (gateway/web/).
# Those builds are the committed ones, which .ci/run rebuilds from frontend-sample/ and
# frontend-graphiql/ and checks are up to date: the image serves what a `pip install` does, and
# building it needs no Node. The base image and every Python package are pinned (the packages in
# deploy/requirements.lock), so a rebuild installs what was tested.
FROM python:3.11.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN useradd --create-home --uid 10001 gateway
WORKDIR /app
COPY deploy/requirements.lock deploy/requirements.lock
RUN pip install --no-cache-dir -r deploy/requirements.lock
COPY pyproject.toml README.md ./
COPY gateway/ gateway/
# The package alone: its dependencies are the locked ones above (pip check fails the build if one
# is missing or at a version pyproject.toml does not accept).
RUN pip install --no-cache-dir --no-deps . && pip check
# On 0.0.0.0 the gateway needs SYSTEM_TOKEN (or ALLOW_OPEN_API=1 behind your own auth) to start.
ENV HOST=0.0.0.0 PORT=8000 DATA_DIR=/home/gateway/data
USER gateway
EXPOSE 8000
# /health answers 200 only while the store answers too; asked on the port the gateway listens on.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=2).status != 200)"]
CMD ["messenger-gateway"]
