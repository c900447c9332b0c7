#!/usr/bin/env bash
# Build the Jaeger all-in-one binary (the OTLP trace backend of `make observe`) from the Go
# module proxy into $1 (default ~/.cache/conduit/jaeger-<version>). `go install pkg@version`
# refuses this module (its go.mod has a replace directive), so the module is downloaded and
# built in place. The UI bundle is not part of the module (it is built with npm upstream): the
# binary serves the query API and a placeholder page.
set -euo pipefail
version="${JAEGER_VERSION:-v1.75.0}"
out="${1:-$HOME/.cache/conduit/jaeger-$version}"
if [ -x "$out/jaeger" ]; then exit 0; fi
command -v go >/dev/null || { echo "building Jaeger needs Go (https://go.dev)"; exit 1; }
started=$(date +%s)
work="$out/src"
rm -rf "$work" && mkdir -p "$out"
dir=$(cd /tmp && go mod download -json "github.com/jaegertracing/jaeger@$version" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
cp -r "$dir" "$work" && chmod -R u+w "$work"
echo "built without the UI bundle; the query API is complete" > "$work/cmd/query/app/ui/actual/README"
(cd "$work" && CGO_ENABLED=0 go build -trimpath -o "$out/jaeger.partial" ./cmd/jaeger)
mv "$out/jaeger.partial" "$out/jaeger"
rm -rf "$work"
echo "jaeger $version built in $(( $(date +%s) - started ))s: $out/jaeger"
