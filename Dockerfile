# The application image: API (gunicorn), worker and scheduler all run from it.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
RUN useradd --create-home --uid 10001 hue \
 && mkdir -p /data/media && chown hue:hue /data/media

COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY wsgi.py ./
COPY migrations ./migrations
COPY hue_reports ./hue_reports

USER hue
ENV HUE_ENV=production \
    MEDIA_ROOT=/data/media
EXPOSE 8000
CMD ["gunicorn", "--config", "python:hue_reports.gunicorn_conf", "--bind", "0.0.0.0:8000", "wsgi:app"]
