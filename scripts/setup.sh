#!/usr/bin/env bash
# Set up opsverify on a Debian/Ubuntu machine: system packages, .venv, the Allure 3 CLI.
# Idempotent: a second run installs nothing new. --dev adds what the project's tests need.
set -euo pipefail
cd "$(dirname "$0")/.."

DEV=0
[[ "${1:-}" == "--dev" ]] && DEV=1

# The sandbox's real parts. Debian names; all come from the distribution's own archive.
APT_PACKAGES=(postgresql nginx prometheus prometheus-alertmanager prometheus-node-exporter
              restic ca-certificates)
# Binaries that prove a package is there, so a warm machine skips apt entirely.
NEEDED_BINARIES=(nginx prometheus prometheus-alertmanager prometheus-node-exporter restic)
if [[ $DEV == 1 ]]; then
  # The tests render the HTML report in a browser and reach a host over a real sshd.
  APT_PACKAGES+=(chromium openssh-server openssh-client)
  NEEDED_BINARIES+=(chromium sshd ssh)
fi
command -v npm >/dev/null || { APT_PACKAGES+=(nodejs npm); NEEDED_BINARIES+=(npm); }
python3 -c 'import ensurepip' 2>/dev/null || { APT_PACKAGES+=(python3-venv); NEEDED_BINARIES+=(__venv__); }
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || NEEDED_BINARIES+=(initdb)

missing=()
for binary in "${NEEDED_BINARIES[@]}"; do
  if [[ $binary == initdb || $binary == __venv__ ]] || ! command -v "$binary" >/dev/null; then
    missing+=("$binary")
  fi
done

if ((${#missing[@]})); then
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  echo "setup: installing system packages (missing: ${missing[*]})"
  # Debian starts a package's service on install (on all interfaces, on systemd hosts).
  # The sandbox runs its own copies on loopback, so forbid those starts while installing.
  POLICY=/usr/sbin/policy-rc.d
  OWN_POLICY=0
  if [[ ! -e $POLICY ]]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod 755 "$POLICY"
    OWN_POLICY=1
  fi
  trap 'if [[ $OWN_POLICY == 1 ]]; then $SUDO rm -f "$POLICY"; fi' EXIT
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${APT_PACKAGES[@]}" >/dev/null
fi

if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
EXTRAS=""
[[ $DEV == 1 ]] && EXTRAS="[dev]"
# Reinstall only when pyproject.toml changed since the last install.
STAMP=.venv/.opsverify-installed$EXTRAS
if [[ ! -e $STAMP || pyproject.toml -nt $STAMP ]]; then
  echo "setup: installing the opsverify package into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".$EXTRAS"
  touch "$STAMP"
fi

if [[ ! -x node_modules/.bin/allure || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "setup: installing the Allure 3 CLI (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi
echo "setup: ready (.venv/bin/opsverify)"
