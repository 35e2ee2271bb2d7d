#!/usr/bin/env bash
# Fails when an #include climbs a layer. The layers, and the folders each
# may include from (its own first); docs/design.md explains them:
#
#   server -> api -> replace -> modules_store -> engine
#   trainer       -> replace -> modules_store -> engine
#   kernels -> the engine's backend interface only
#
# Headers are included by file name (the CMake targets add the folders), so
# each name is looked up in the tree to find its layer.
# Usage: layers_test.sh [source root]
set -u
cd "${1:-$(dirname "$0")/..}" || exit 2

declare -A may_include=(
    [engine]="engine"
    [modules_store]="modules_store engine"
    [replace]="replace modules_store engine"
    [trainer]="trainer replace modules_store engine"
    [api]="api replace modules_store engine"
    [server]="server api replace modules_store engine"
    [kernels]="kernels engine"
)
# What of the engine the CUDA backend may see: the backend interface.
backend_interface=" backend_impl.h backend.h tensor.h status.h "

failures=0
fail() {
    echo "$1"
    failures=$((failures + 1))
}

declare -A layer_of
while read -r header; do
    name=${header##*/} layer=${header%%/*}
    if [[ -n ${layer_of[$name]:-} && ${layer_of[$name]} != "$layer" ]]; then
        fail "$header: the name is also a header of ${layer_of[$name]}/; includes by name would be ambiguous"
    fi
    layer_of[$name]=$layer
done < <(find "${!may_include[@]}" -name '*.h' | sort)

checked=0
while IFS=: read -r file line text; do
    layer=${file%%/*}
    name=${text#*\"} name=${name%%\"*} name=${name##*/}
    target=${layer_of[$name]:-}
    checked=$((checked + 1))
    if [[ -z $target ]]; then
        fail "$file:$line: includes \"$name\", which is no header of the tree"
    elif [[ " ${may_include[$layer]} " != *" $target "* ]]; then
        fail "$file:$line: includes $target/$name; $layer/ may include only from: ${may_include[$layer]}"
    elif [[ $layer == kernels && $target == engine && $backend_interface != *" $name "* ]]; then
        fail "$file:$line: includes engine/$name; kernels/ reaches the engine only through:${backend_interface% }"
    fi
done < <(grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' --include='*.c' --include='*.h' --include='*.cu' \
    "${!may_include[@]}" | sort)

if ((failures)); then
    echo "layers: $failures include(s) climb a layer or cannot be placed"
    exit 1
fi
echo "layers: $checked includes checked, none climbs a layer"
