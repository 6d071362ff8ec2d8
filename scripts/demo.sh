#!/usr/bin/env bash
# The main job, end to end on this machine: bring up a lab of the example
# fleet (real sshd and iptables in network namespaces), review the change
# with a dry run, push, prove the policy with probes, push again to show
# that nothing changes, and take the lab down. Then the same fleet as a
# cloud provider hands it over: root's login off, fwpush logging in as
# deploy and becoming root with sudo; and that fleet found by tag on a fake
# of DigitalOcean's API.
set -euo pipefail
cd "$(dirname "$0")/.."
fw=$PWD/bin/fwpush
site=examples/site.toml
cloud=examples/cloud.toml

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
trap '"$fw" lab down "$site" >/dev/null 2>&1 || true; "$fw" lab down "$cloud" >/dev/null 2>&1 || true' EXIT

step "fwpush validate $site"
"$fw" validate "$site"

step "fwpush lab up $site"
"$fw" lab up "$site"

step "fwpush run --dry-run $site   (review: what would change, nothing is touched)"
"$fw" lab exec "$site" -- "$fw" run --dry-run "$site" || [ $? -eq 2 ]

step "fwpush run $site"
"$fw" lab exec "$site" -- "$fw" run "$site"

step "fwpush check $site   (the reachability matrix: what must be open and what must be shut, probed for real)"
"$fw" lab exec "$site" -- "$fw" check "$site"

step "a few probes by hand"
probe() { printf '%-55s' "$1 -> $2:$3"; "$fw" lab probe "$site" "$1" "$2" "$3"; }
probe controller 203.0.113.11 80      # internet -> lb http: reachable
probe controller 203.0.113.11 22      # internet -> lb ssh: filtered
probe mysql-1 198.18.0.21 22          # db -> app ssh: filtered
probe stranger 198.18.0.31 3306       # another tenant -> db: filtered

step "fwpush run $site   (again: every host unchanged)"
"$fw" lab exec "$site" -- "$fw" run "$site"

step "fwpush lab down $site"
"$fw" lab down "$site"

step "fwpush lab up $cloud   (root's login off; deploy with passwordless sudo)"
"$fw" lab up "$cloud"

step "ssh root@tunnel-1: refused, as on a cloud image"
"$fw" lab exec "$cloud" -- ssh -F "/var/lib/fwpush-lab/cloud/ssh_config" -o BatchMode=yes -l root 203.0.113.10 true 2>&1 | tail -n 1 || true

step "fwpush run $cloud   (as deploy, every step that needs root under sudo -n)"
"$fw" lab exec "$cloud" -- "$fw" run "$cloud"

step "the same fleet by tag: a fake DigitalOcean API in the lab serves $cloud's hosts as droplets"
tmp=$(mktemp -d)
do=$tmp/do.toml
sed 's|^# endpoint = .*|endpoint = "http://127.0.0.1:8086"   # fwpush lab fake-do|' examples/do.toml >"$do"
export DIGITALOCEAN_TOKEN=lab
"$fw" lab exec "$cloud" -- "$fw" lab fake-do "$cloud" &
fake=$!
for _ in $(seq 50); do "$fw" lab exec "$cloud" -- "$fw" hosts "$do" >/dev/null 2>&1 && break; sleep 0.2; done

step "fwpush hosts do.toml   (every host a droplet, found by its tag)"
"$fw" lab exec "$cloud" -- "$fw" hosts "$do"

step "fwpush run do.toml   (the fleet by tag is the fleet by hand: every host unchanged)"
"$fw" lab exec "$cloud" -- "$fw" run "$do"
kill "$fake" 2>/dev/null || true
rm -rf "$tmp"

step "fwpush lab down $cloud"
"$fw" lab down "$cloud"
trap - EXIT
