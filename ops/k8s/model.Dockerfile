# A model image for the init container of ops/k8s/base/deployment.yaml: the files only,
# copied into the pod's volume at start. The build context is an exported model directory
# (README "Getting a model": model.onnx, model_int8.onnx, tokenizer.json...):
#   docker build -f ops/k8s/model.Dockerfile \
#     -t registry.example.com/rerank-gateway-model:ms-marco-MiniLM-L-6-v2 models/ms-marco-MiniLM-L-6-v2
FROM busybox:1.36
COPY . /model/
USER 10001:10001
