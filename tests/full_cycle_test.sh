#!/usr/bin/env bash
# A user's own data, end to end: a tiny image-folder dataset of rendered
# shapes (make_shapes.py) is trained on with MODA, decomposed into a
# registry (the data found again through the checkpoint's record), served,
# and a PNG of each class posted to /v1/infer must come back under the
# dataset's own class names, from the full model and from a composed one.
#   full_cycle_test.sh MODA MODA_SERVER
set -u
moda=$1
server=$2
here=$(cd "$(dirname "$0")" && pwd)
source "$here/server_port.sh"
pass=0 fails=0
check() { # description, status (0 = ok)
  if [ "$2" -eq 0 ]; then pass=$((pass + 1)); else echo "FAIL: $1"; fails=$((fails + 1)); fi
}
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT

/usr/bin/python3 "$here/make_shapes.py" "$work/shapes" 60 20
check "the dataset is made" $?

"$moda" train --arch lenet5 --dataset folder --data-dir "$work/shapes" --epochs 8 --batch-size 16 --moda \
  --no-augment --seed 1 --out "$work/run" > "$work/train.log" 2>&1
check "moda train on the folder" $?
acc=$(sed -n 's/.*test acc \([0-9.]*\)%.*/\1/p' "$work/train.log" | tail -1)
awk -v a="${acc:-0}" 'BEGIN { exit !(a >= 90) }'
check "test accuracy $acc% >= 90%" $?

"$moda" decompose --checkpoint "$work/run/checkpoint.safetensors" --out "$work/registry" --name shapes \
  > "$work/decompose.log" 2>&1
check "moda decompose finds the training data by itself" $? || cat "$work/decompose.log"
out=$("$moda" inspect "$work/registry" shapes 2>&1)
[[ "$out" == *circle* && "$out" == *cross* && "$out" == *square* ]]
check "moda inspect names the folder classes" $?

"$server" --registry "$work/registry" --port 0 --threads 2 --workers 2 2> "$work/server.log" &
pid=$!
port=$(server_port "$work/server.log" "$pid")
check "moda-server serves the registry" $? || { cat "$work/server.log"; exit 1; }

# classify FILE QUERY: the class the server gives a PNG.
classify() {
  curl -s -X POST --data-binary @"$1" -H 'Content-Type: image/png' "http://127.0.0.1:$port/v1/infer?$2" |
    sed -n 's/.*"outputs":\[{"class":"\([^"]*\)".*/\1/p'
}
for shape in circle cross square; do
  got=$(classify "$work/shapes/test/$shape/007.png" model=shapes)
  check "a PNG of a $shape is a '$got' to the full model" $([ "$got" = "$shape" ]; echo $?)
done
for shape in circle square; do # circle and square composed: classes 0 and 2 of the sorted folder names
  got=$(classify "$work/shapes/test/$shape/011.png" 'model=shapes&classes=0,2')
  check "a PNG of a $shape is a '$got' to the composed circle/square model" $([ "$got" = "$shape" ]; echo $?)
done

kill -TERM "$pid"
wait "$pid"
check "moda-server exits 0 on SIGTERM" $?
pid=
echo "full cycle: $pass passed, $fails failed"
[ "$fails" -eq 0 ]
