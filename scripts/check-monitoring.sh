#!/usr/bin/env bash
# Checks the alert rules and the Grafana dashboards under monitoring/:
#   - promtool check rules and promtool test rules (the unit tests in eventline-rules.test.yaml);
#   - every alert has a test where it fires and one where it must not, a summary annotation, a
#     runbook_url, and a runbook paragraph under its own heading in README.md;
#   - every dashboard is valid JSON with unique panel ids, panels inside the 24-column grid and
#     not overlapping, a query in every panel, only the variables it defines, and PromQL that
#     parses (promtool check rules on the queries, Grafana's variables replaced).
# Installs Debian's `prometheus` package (for promtool) and python3-yaml when they are missing.
# That the metric names exist is checked against the running services by
# services/eventline/tests/monitoring.rs (and operator/api's metrics tests).
#
# One line per check (ok / FAIL); exits non-zero when any check fails.
set -uo pipefail

cd "$(dirname "$0")/.."
rules=monitoring/prometheus/eventline-rules.yaml
tests=monitoring/prometheus/eventline-rules.test.yaml
dashboards=monitoring/grafana

log() { echo "check-monitoring: $*" >&2; }

apt_install() {
  log "installing $*"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! command -v promtool >/dev/null 2>&1; then
  apt_install prometheus || { echo "FAIL install Debian's prometheus package (promtool)"; exit 1; }
fi
if ! python3 -c 'import yaml' 2>/dev/null; then
  apt_install python3-yaml || { echo "FAIL install python3-yaml"; exit 1; }
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
ok() { echo "ok   $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
check() {
  local desc=$1; shift
  if "$@" >"$work/out" 2>&1; then ok "$desc"; else fail "$desc"; sed 's/^/     | /' "$work/out" | tail -n 40; fi
}
fails() { ! "$@"; }

log "$(promtool --version 2>&1 | head -n1)"
check "promtool check rules $rules" promtool check rules "$rules"
# promtool resolves rule_files relative to the test file.
check "promtool test rules $tests" promtool test rules "$tests"

# alerts_covered RULES TESTS README: every alert fires in a test and stays silent in another,
# has a summary and a runbook_url pointing at its README heading, which exists.
alerts_covered() {
  python3 - "$@" <<'PY'
import re, sys, yaml
rules, tests, readme = sys.argv[1:]
alerts = {}
for group in yaml.safe_load(open(rules))["groups"]:
    for rule in group["rules"]:
        if "alert" in rule:
            alerts.setdefault(rule["alert"], []).append(rule)
fires, silent = set(), set()
for case in yaml.safe_load(open(tests))["tests"]:
    for check in case.get("alert_rule_test", []):
        (fires if check.get("exp_alerts") else silent).add(check["alertname"])
headings = {m.group(1) for m in re.finditer(r"^#{2,6} (Eventline\w+)\s*$", open(readme).read(), re.M)}
problems = []
for name, variants in sorted(alerts.items()):
    if name not in fires:
        problems.append(f"{name}: no test where it fires")
    if name not in silent:
        problems.append(f"{name}: no test where it must not fire")
    if name not in headings:
        problems.append(f"{name}: no '#### {name}' runbook heading in {readme}")
    for rule in variants:
        annotations = rule.get("annotations", {})
        if not annotations.get("summary"):
            problems.append(f"{name}: no summary annotation")
        if not annotations.get("runbook_url", "").endswith("#" + name.lower()):
            problems.append(f"{name}: runbook_url does not end with #{name.lower()}")
        if rule.get("labels", {}).get("severity") not in ("warning", "critical"):
            problems.append(f"{name}: severity is not warning or critical")
for name in (fires | silent) - set(alerts):
    problems.append(f"the tests name {name}, which the rules do not define")
if problems:
    sys.exit("\n".join(problems))
print(f"{len(alerts)} alerts, each firing and silent in a test, each with a runbook")
PY
}
check "every alert fires in a test and stays silent in another, has a summary and a README runbook" \
  alerts_covered "$rules" "$tests" README.md

# dashboard_checks OUT DASHBOARD...: the structure of each dashboard; writes every query, with
# Grafana's variables replaced, as a recording rule into OUT for promtool to parse.
dashboard_checks() {
  python3 - "$@" <<'PY'
import json, re, sys, yaml
out, files = sys.argv[1], sys.argv[2:]
problems, rules, uids = [], [], set()
if not files:
    sys.exit("no dashboards")
builtin = {"__rate_interval", "__interval", "__range", "__all"}
for path in files:
    d = json.load(open(path))
    where = path
    if d.get("uid") in uids:
        problems.append(f"{where}: uid {d.get('uid')} used twice")
    uids.add(d.get("uid"))
    for key in ("uid", "title", "panels", "templating", "schemaVersion"):
        if key not in d:
            problems.append(f"{where}: no {key}")
    defined = {v["name"] for v in d.get("templating", {}).get("list", [])}
    if "datasource" not in defined:
        problems.append(f"{where}: no datasource variable (the queries must not name a data source uid)")
    panels = []
    for p in d.get("panels", []):
        panels.append(p)
        panels.extend(p.get("panels", []))
    ids = [p.get("id") for p in panels]
    if len(ids) != len(set(ids)) or None in ids:
        problems.append(f"{where}: panel ids missing or not unique: {ids}")
    cells = {}
    for p in panels:
        g = p.get("gridPos", {})
        title = p.get("title", "?")
        if not all(isinstance(g.get(k), int) for k in "hwxy") or g["x"] + g["w"] > 24 or g["w"] < 1 or g["h"] < 1:
            problems.append(f"{where}: panel {title!r} has a bad gridPos {g}")
            continue
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                if (x, y) in cells:
                    problems.append(f"{where}: panel {title!r} overlaps {cells[(x, y)]!r}")
                    break
                cells[(x, y)] = title
            else:
                continue
            break
        if p.get("type") == "row":
            continue
        if p.get("datasource", {}).get("uid") != "${datasource}":
            problems.append(f"{where}: panel {title!r} does not use the datasource variable")
        if not p.get("title") or not p.get("description"):
            problems.append(f"{where}: a panel without a title or description: {title!r}")
        targets = p.get("targets") or []
        if not targets:
            problems.append(f"{where}: panel {title!r} has no query")
        refs = [t.get("refId") for t in targets]
        if len(refs) != len(set(refs)) or None in refs:
            problems.append(f"{where}: panel {title!r} refIds {refs}")
        for t in targets:
            if not t.get("expr"):
                problems.append(f"{where}: panel {title!r} target {t.get('refId')} has no expr")
                continue
            rules.append((f"{where}: {title}", t["expr"]))
    for v in d.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v.get("query", {})
            q = q.get("query") if isinstance(q, dict) else q
            m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", q or "")
            if not m:
                problems.append(f"{where}: variable {v['name']} query {q!r} is not label_values(SELECTOR, LABEL)")
            else:
                rules.append((f"{where}: variable {v['name']}", m.group(1)))
    for name in set(re.findall(r"\$\{?(\w+)", json.dumps(d))) - defined - builtin:
        problems.append(f"{where}: uses ${name}, which it does not define")
def grafana_free(expr):
    expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m").replace("$__range", "1h")
    return re.sub(r"\$\{?\w+\}?", ".*", expr)
yaml.safe_dump({"groups": [{"name": "dashboards", "rules": [
    {"record": f"dashboard:query_{i}", "expr": grafana_free(e), "labels": {"panel": where[:200]}}
    for i, (where, e) in enumerate(rules)]}]}, open(out, "w"), sort_keys=False)
if problems:
    sys.exit("\n".join(problems))
print(f"{len(files)} dashboards, {len(rules)} queries")
PY
}
shopt -s nullglob
boards=("$dashboards"/*.json)
check "Grafana dashboards: JSON, unique ids, grid, a query per panel, defined variables" \
  dashboard_checks "$work/dashboard-queries.yaml" "${boards[@]}"
check "Grafana dashboards: every query is PromQL promtool parses" \
  promtool check rules "$work/dashboard-queries.yaml"

# The checks themselves can fail.
sed 's/0+200x30/0+20x30/' "$tests" >"$work/bad.test.yaml" && cp "$rules" "$work/"
check "self-test: promtool test rules fails when an expected alert does not fire" \
  fails promtool test rules "$work/bad.test.yaml"
printf 'groups:\n  - name: x\n    rules:\n      - alert: EventlineUntested\n        expr: vector(1)\n        labels: {severity: warning}\n        annotations: {summary: s, runbook_url: "x#eventlineuntested"}\n' >"$work/untested.yaml"
printf 'rule_files: [untested.yaml]\ntests: []\n' >"$work/untested.test.yaml"
check "self-test: an alert without tests or a runbook is refused" \
  fails alerts_covered "$work/untested.yaml" "$work/untested.test.yaml" README.md
python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
d["panels"][1]["gridPos"] = dict(d["panels"][2]["gridPos"])
d["panels"][3]["targets"][0]["expr"] = "sum(rate(eventline_commands_total[5m]"
json.dump(d, open(sys.argv[2], "w"))' "${boards[0]}" "$work/broken.json"
check "self-test: an overlapping panel is refused" \
  fails dashboard_checks "$work/broken-queries.yaml" "$work/broken.json"
check "self-test: a query promtool cannot parse is refused" \
  fails promtool check rules "$work/broken-queries.yaml"

if [ "$failures" -gt 0 ]; then
  echo "check-monitoring: $failures check(s) failed"
  exit 1
fi
echo "check-monitoring: all checks passed"
