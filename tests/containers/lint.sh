#!/usr/bin/env bash
# The deployment files, linted and checked against the server: hadolint on
# the Dockerfiles, yamllint on every YAML file, kubernetes-validate on the
# built-in Kubernetes kinds, and check_deploy.py for what must agree
# between them, KServe's resources and moda-server itself.
#
#   tests/containers/lint.sh [BUILD_DIR]     (default: build)
#
# Needs .venv (scripts/install-deps.sh --test); exit 77 without it.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
build=$(cd "${1:-$root/build}" && pwd)
venv=$root/.venv/bin
[ -x "$venv/hadolint" ] || { echo "lint: no .venv with the linters (scripts/install-deps.sh --test)"; exit 77; }
cd "$root"

"$venv/hadolint" --config docker/hadolint.yaml docker/Dockerfile docker/Dockerfile.cuda docker/nginx/Dockerfile
check "hadolint: docker/Dockerfile, docker/Dockerfile.cuda, docker/nginx/Dockerfile" $?
# Every YAML file of the source tree (.yamllint.yaml leaves out builds and
# the virtualenv). Not through git: the tree may be an archive.
"$venv/yamllint" --strict -c .yamllint.yaml .
check "yamllint: every YAML file" $?
"$venv/kubernetes-validate" --strict --quiet docker/k8s/*.yaml
check "kubernetes-validate --strict: Deployment, Service, HorizontalPodAutoscaler" $?
"$venv/python" tests/containers/check_deploy.py "$root" "$build/moda-server"
check "check_deploy.py: Docker, Kubernetes and KServe files agree with each other and the server" $?
report "deploy lint"
