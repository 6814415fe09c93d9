#!/usr/bin/env bash
# Install the Debian packages pushlab drives (nginx, chromium, node, redis-server) when missing.
# Runs apt-get only as root; otherwise it says what is missing and exits 0 (tests then skip,
# except under CI=true, where a missing part fails the test that needs it).
set -euo pipefail
need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v node >/dev/null 2>&1 || need+=(nodejs)  # the Node baseline row (baseline/node)
command -v npm >/dev/null 2>&1 || need+=(npm)
# redis-server: the cluster's broker, and private throwaway servers for the Redis-restart tests.
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# perf: experiments.cpu_profile samples a server's CPU (kernel against user space).
command -v perf >/dev/null 2>&1 || need+=(linux-perf)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "setup-system: missing ${need[*]}; install them with apt-get (needs root)" >&2
  exit 0
fi
echo "setup-system: installing ${need[*]} from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
