#!/usr/bin/env bash
# `make image`: the Conduit Mesh image (and, with `all`, the PostgreSQL image), built by Podman
# without network: the Debian bases come from deploy/podman/base.sh (cached), the Python
# packages from wheels built here on the host into .build/wheels.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
podman=deploy/podman/podman
python="${PYTHON:-.venv/bin/python}"
tag="${CONDUIT_IMAGE:-localhost/conduit-mesh:dev}"

bash deploy/podman/base.sh "${1:-base}"
rm -f .build/wheels/conduit_server-*.whl .build/wheels/conduit_client-*.whl
"$python" -m pip wheel --quiet --disable-pip-version-check -w .build/wheels ./clients/python .
# Resolve again for the image's interpreter (Debian's 3.11.2), binary wheels only, ours from
# above. pip evaluates environment markers with the host's full version, so what a dependency
# needs only below 3.11.3 is named here (redis: async-timeout).
# pip does not widen --platform: name every manylinux tag bookworm's glibc (2.36) runs.
platforms=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform manylinux2010_x86_64)
for minor in $(seq 5 36); do platforms+=(--platform "manylinux_2_${minor}_x86_64"); done
"$python" -m pip download --quiet --disable-pip-version-check -d .build/wheels --find-links .build/wheels \
  --only-binary=:all: --implementation cp --python-version 3.11.2 --abi cp311 "${platforms[@]}" conduit-server 'async-timeout>=4.0.3'
"$podman" build --quiet --network none --file deploy/Containerfile --tag "$tag" . >/dev/null
echo "built $tag"
if [[ "${1:-base}" == all ]]; then
  "$podman" build --quiet --network none --tag localhost/conduit-postgres:dev deploy/images/postgres >/dev/null
  echo "built localhost/conduit-postgres:dev"
fi
