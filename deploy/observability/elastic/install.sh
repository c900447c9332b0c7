#!/usr/bin/env bash
# Install the index template and the ingest pipeline into Elasticsearch at $1 (default $ELASTICSEARCH_URL).
set -euo pipefail
url="${1:-${ELASTICSEARCH_URL:-http://127.0.0.1:9200}}"
here="$(cd "$(dirname "$0")" && pwd)"
curl -fsS -X PUT "$url/_ingest/pipeline/conduit-logs" -H 'Content-Type: application/json' \
     --data-binary "@$here/ingest-pipeline.json" && echo
curl -fsS -X PUT "$url/_index_template/conduit-logs" -H 'Content-Type: application/json' \
     --data-binary "@$here/index-template.json" && echo
