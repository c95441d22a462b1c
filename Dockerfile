# Slim runtime image: gunicorn as a non-root user. Not built by CI (no Docker engine there).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY agegate ./agegate
COPY training ./training
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    AGEGATE_MODEL_DIR=/app/model AGEGATE_DATA_DIR=/app/var AGEGATE_BIND=0.0.0.0:8000
RUN useradd --system --uid 10001 --home-dir /app agegate
WORKDIR /app
COPY --from=build /install /usr/local
COPY model ./model
COPY wsgi.py gunicorn.conf.py ./
RUN mkdir -p /app/var && chown agegate /app/var
USER agegate
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status != 200)"
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
