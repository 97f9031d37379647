# syntax=docker/dockerfile:1
# One image for every service (api, worker, migrate, dashboard); the command picks the role.
#
#   CPU (default):  docker build -t init-tuner .
#   GPU (worker):   docker build -t init-tuner:gpu \
#                     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu130 .
#
# The CUDA wheels bundle the CUDA runtime; the host needs only the NVIDIA driver and the
# NVIDIA Container Toolkit. docker-compose.yml builds both flavours.
FROM python:3.11-slim

# Where torch comes from: the CPU wheel index by default, a CUDA one (cuXXX) for GPU images.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# 1. torch first, pinned, from its own index (the largest layer, and the one that changes least),
#    so that resolving the project's `torch>=2.3` never pulls another torch build from PyPI.
RUN pip install --index-url "${TORCH_INDEX_URL}" torch==2.13.0

# 2. The project's other dependencies, read from pyproject.toml alone: this layer is rebuilt
#    only when pyproject.toml changes, not on every source edit (setuptools' package discovery
#    needs the sources, so the project itself is installed in step 3).
COPY pyproject.toml constraints.txt /tmp/
RUN python -c "import tomllib; p = tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']; extras = p['optional-dependencies']; print('\n'.join(d for d in p['dependencies'] + extras['engine'] + extras['service'] if not d.startswith('init-tuner')))" \
        > /tmp/requirements.txt \
    && pip install -c /tmp/constraints.txt -r /tmp/requirements.txt \
    && python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__" \
    && rm /tmp/requirements.txt /tmp/pyproject.toml

# 3. The project (tuner, api, storage and the Alembic migrations as package data).
COPY . /tmp/src
RUN pip install -c /tmp/src/constraints.txt '/tmp/src[service]' \
    && rm -rf /tmp/src \
    && python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"

# Never run as root. The working directory is writable so the SQLite default
# (sqlite:///./tuner.db) works for a one-container `tuner run`; compose uses PostgreSQL.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin tuner \
    && mkdir -p /var/lib/tuner \
    && chown tuner:tuner /var/lib/tuner
USER tuner
WORKDIR /var/lib/tuner

EXPOSE 8000
ENTRYPOINT ["tuner"]
# `tuner serve` refuses a non-loopback bind unless TUNER_API_TOKENS is set.
CMD ["serve", "--host", "0.0.0.0"]
