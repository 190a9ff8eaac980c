# Traitor: one node. Build: docker build -t traitor .   Run: docker run -p 8080:8080 -v traitor:/data traitor
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    TRAITOR_DATA_DIR=/data TRAITOR_IP=0.0.0.0 TRAITOR_PORT=8080

WORKDIR /app
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --no-cache-dir -r requirements.lock
COPY src ./src
RUN pip install --no-cache-dir --no-deps . \
 && useradd --create-home --uid 10001 traitor \
 && mkdir -p /data && chown traitor /data

USER 10001
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s \
  CMD ["python", "-c", "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz').status != 200)"]

# Binding 0.0.0.0 needs a token: pass TRAITOR_TOKEN (or TRAITOR_INSECURE=1 on a private network).
ENTRYPOINT ["traitor"]
