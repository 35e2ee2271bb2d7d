#!/usr/bin/env bash
# The moda CLI's contract: --help everywhere, usage errors exit 2, runtime
# errors exit 1 with a message, and `info` reports the reference counts.
set -u
moda=$1
fails=0
pass=0
expect() { # description, expected exit code, command...
  local what=$1 want=$2; shift 2
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [ "$rc" -ne "$want" ]; then
    echo "FAIL: $what: exit $rc, expected $want"; echo "$out" | head -5; fails=$((fails + 1))
  else
    pass=$((pass + 1))
  fi
  LAST=$out
}
contains() { # description, needle
  if [[ "$LAST" != *"$2"* ]]; then echo "FAIL: $1: output lacks '$2'"; fails=$((fails + 1)); else pass=$((pass + 1)); fi
}

expect "no command" 2 "$moda"
expect "top help" 0 "$moda" --help
contains "top help" "train"
for c in train eval info decompose inspect verify compose eval-reuse; do
  expect "$c --help" 0 "$moda" $c --help
  contains "$c --help" "usage: moda $c"
done
expect "unknown command" 2 "$moda" frobnicate
expect "unknown flag" 2 "$moda" train --bogus
contains "unknown flag" "unknown option '--bogus'"
expect "bad number" 2 "$moda" train --epochs ten
expect "missing value" 2 "$moda" train --epochs
expect "bad arch" 2 "$moda" train --arch alexnet --out /tmp/moda-cli-unused
expect "bad device" 2 "$moda" train --device tpu --out /tmp/moda-cli-unused
contains "bad device" "unknown --device 'tpu'"
expect "train help" 0 "$moda" train --help
contains "train help lists folder data" "| folder"
contains "train help lists --strict-images" "--strict-images"
expect "folder data missing" 1 "$moda" train --dataset folder --data-dir /nonexistent-images --out /tmp/moda-cli-unused
contains "folder data missing" "/nonexistent-images: not a directory"
expect "eval needs a checkpoint" 2 "$moda" eval
expect "eval-reuse needs a registry" 2 "$moda" eval-reuse
expect "eval-reuse bad tasks" 2 "$moda" eval-reuse --registry /tmp --model m --tasks zero
expect "eval-reuse missing registry" 1 "$moda" eval-reuse --registry /nonexistent-reg --model m
contains "eval-reuse missing registry" "/nonexistent-reg"
expect "eval missing file" 1 "$moda" eval --checkpoint /nonexistent/ck.safetensors
contains "eval missing file" "/nonexistent/ck.safetensors"
expect "info bad arch" 2 "$moda" info --arch alexnet
expect "info bad size" 2 "$moda" info --arch vgg16 --input-size 28
for pair in vgg16:33646666 resnet18:11173962 mobilenet:3217226 lenet5:62006; do
  expect "info ${pair%%:*}" 0 "$moda" info --arch "${pair%%:*}"
  contains "info ${pair%%:*}" "${pair##*:} trainable parameters"
done
echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
