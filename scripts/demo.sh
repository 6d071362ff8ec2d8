#!/usr/bin/env bash
# The main job, end to end on this machine: validate the example fleet and
# render its policies. (The lab and the push to it come with `fwpush lab`
# and `fwpush run`.)
set -euo pipefail
cd "$(dirname "$0")/.."
fw=bin/fwpush
site=examples/site.toml
echo "== fwpush validate $site"
$fw validate "$site"
echo
echo "== fwpush render --host haproxy-www $site"
$fw render --host haproxy-www "$site"
