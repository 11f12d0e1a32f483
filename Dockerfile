# syntax=docker/dockerfile:1
# Images of the LGSP bus, built by docker-compose.yml from this repository:
#   target "bus"      the `lgsp` command (archiver, router, one-off commands), on python:3.11-slim
#   target "airflow"  Airflow 3 with the bus installed, for the api-server, scheduler,
#                     dag-processor, triggerer and celery workers
# Both carry the repository's schemas/ and dags/ under /opt/lgsp.

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11

FROM ${PYTHON_IMAGE} AS bus
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system --gid 10001 lgsp \
 && useradd --system --uid 10001 --gid lgsp --home-dir /var/lib/lgsp --shell /usr/sbin/nologin lgsp \
 && mkdir -p /var/lib/lgsp /etc/lgsp \
 && chown lgsp:lgsp /var/lib/lgsp
WORKDIR /opt/lgsp
COPY . /opt/lgsp
RUN mkdir -p /opt/lgsp/dags /opt/lgsp/schemas \
 && pip install /opt/lgsp \
 && rm -rf /opt/lgsp/build /opt/lgsp/*.egg-info
ENV LGSP_HOME=/var/lib/lgsp \
    LGSP_SCHEMAS_DIR=/opt/lgsp/schemas \
    LGSP_DAGS_DIR=/opt/lgsp/dags
USER lgsp
WORKDIR /var/lib/lgsp
ENTRYPOINT ["lgsp"]
CMD ["--help"]

FROM ${AIRFLOW_IMAGE} AS airflow
# The image's own Airflow stays as it is: pin it while installing the bus next to it.
COPY --chown=airflow:root . /opt/lgsp
RUN mkdir -p /opt/lgsp/dags /opt/lgsp/schemas /opt/airflow/lgsp \
 && pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" /opt/lgsp \
 && rm -rf /opt/lgsp/build /opt/lgsp/*.egg-info
ENV LGSP_HOME=/opt/airflow/lgsp \
    LGSP_SCHEMAS_DIR=/opt/lgsp/schemas \
    LGSP_DAGS_DIR=/opt/lgsp/dags \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/lgsp/dags
