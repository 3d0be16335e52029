# rerank-gateway, CPU image.
#   docker build -t rerank-gateway .
#   docker run -p 9201:9201 -v "$PWD/models:/models:ro" \
#     -e GATEWAY_UPSTREAM__URLS=http://es:9200 \
#     -e GATEWAY_MODEL__PATH=/models/ms-marco-MiniLM-L-6-v2 rerank-gateway
# The model is not baked in: mount a directory holding model.onnx + tokenizer.json at /models
# (README "Getting a model"), or build with EXTRAS=hub and set GATEWAY_MODEL__HUB_ID instead.
# The CUDA variant is Dockerfile.cuda. OpenVINO's execution provider (bf16 on CPUs with
# AVX512_BF16 or AMX): --build-arg ORT=onnxruntime-openvino, run with GATEWAY_MODEL__DEVICE=openvino.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG EXTRAS=""
# Another build of the `onnxruntime` module (same import name) replaces the CPU wheel.
ARG ORT=onnxruntime
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY pyproject.toml README.md /src/
COPY gateway /src/gateway
RUN /opt/venv/bin/pip install "/src${EXTRAS:+[$EXTRAS]}" \
 && if [ "${ORT}" != onnxruntime ]; then \
      /opt/venv/bin/pip uninstall -y onnxruntime && /opt/venv/bin/pip install "${ORT}"; \
    fi

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GATEWAY_SERVER__HOST=0.0.0.0 \
    GATEWAY_SERVER__PORT=9201 \
    GATEWAY_LOG__JSON_LINES=true \
    HF_HOME=/home/gateway/.cache/huggingface
RUN groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid gateway --create-home --home-dir /home/gateway gateway \
 && mkdir /models && chown gateway:gateway /models
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /home/gateway
VOLUME ["/models"]
EXPOSE 9201
# Ready = model loaded and warmed, search cluster answered (503 until then).
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os,sys,urllib.request as u; sys.exit(0 if u.urlopen('http://127.0.0.1:%s/_gateway/health/ready' % os.environ.get('GATEWAY_SERVER__PORT', '9201'), timeout=2).status == 200 else 1)"]
# SIGTERM (docker stop) → stop accepting, finish in-flight requests within
# GATEWAY_SERVER__SHUTDOWN_TIMEOUT_S, flush cache writes, close connections.
STOPSIGNAL SIGTERM
CMD ["rerank-gateway", "serve"]
