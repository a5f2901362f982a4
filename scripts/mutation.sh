#!/usr/bin/env bash
# Mutation testing with StrykerJS, for a periodic run by hand (never in CI: a directory takes hours).
# Stryker changes one operator or statement of the product at a time ("mutants") and runs the tests that
# guard that directory; a mutant the tests still pass on ("survived") is a bug they would miss.
#
#   scripts/mutation.sh format|io|channels [GLOB]    GLOB narrows what is mutated, e.g. src/format/bitmap.ts
#
# How it fits Bun: Stryker's command runner runs `bun test` on the files below for every mutant
# (coverage analysis off: Stryker cannot see inside bun's runner). Two things matter:
#   - the command is `exec bun test ...`: Stryker kills the shell it started when a mutant times out
#     (after 1.5 times the unmutated run plus 10 s: mutants that loop forever are common here),
#     and without exec the bun child outlives it, burning a core;
#   - Stryker and the TypeScript it needs to rewrite tsconfig.json (typescript 5's JS API; the project's
#     typescript 7 is the native tsgo) are installed in a tool folder outside the repository, not in
#     package.json.
# Measured 2026-11-30 on 2 shared cores: `scripts/mutation.sh format src/format/bitmap.ts`, 86 mutants
# in 5 min: score 89.5 % (57 killed, 20 timed out, 9 survived; most survivors remove the loops' skip-a-
# whole-byte fast paths, which changes speed, not results). A whole directory takes hours.
# Reports: reports/mutation/ (HTML and JSON) and a table on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

STRYKER_VERSION=9.6.1
TYPESCRIPT_VERSION=5.9.3
TOOLS=${RAMSNAP_MUTATION_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/ramsnap-mutation}

target=${1:-}
case "$target" in
  format) mutate="src/format/**/*.ts"; tests="test/format-bitmap.test.ts test/format-encode.test.ts test/format-layout.test.ts test/format-parse.test.ts test/inspect-errors.test.ts" ;;
  io) mutate="src/io/**/*.ts"; tests="test/save-restore.test.ts test/crash-order.test.ts test/outside-judges.test.ts test/faults.test.ts" ;;
  channels) mutate="src/channels/**/*.ts"; tests="test/channels-plan.test.ts test/save-restore.test.ts test/direct-io-proof.test.ts test/faults.test.ts" ;;
  *) echo "usage: scripts/mutation.sh format|io|channels [GLOB]" >&2; exit 2 ;;
esac
mutate=${2:-$mutate}

if [ ! -x "$TOOLS/node_modules/.bin/stryker" ]; then
  echo "mutation: installing @stryker-mutator/core@$STRYKER_VERSION and typescript@$TYPESCRIPT_VERSION in $TOOLS"
  mkdir -p "$TOOLS"
  npm install --prefix "$TOOLS" --no-audit --no-fund "@stryker-mutator/core@$STRYKER_VERSION" "typescript@$TYPESCRIPT_VERSION" >/dev/null
fi

config="$TOOLS/stryker-$target.json"
cat >"$config" <<EOF
{
  "testRunner": "command",
  "commandRunner": { "command": "CI=true exec bun test --timeout 120000 $tests" },
  "mutate": ["$mutate"],
  "coverageAnalysis": "off",
  "concurrency": 1,
  "timeoutMS": 10000,
  "reporters": ["clear-text", "progress-append-only", "html", "json"],
  "tempDirName": ".stryker-tmp",
  "cleanTempDir": true
}
EOF
exec "$TOOLS/node_modules/.bin/stryker" run "$config"
