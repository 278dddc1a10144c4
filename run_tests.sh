#!/usr/bin/env bash
# Install what the tests need, then run the whole suite: ./run_tests.sh [pytest arguments]
# Debian packages that are missing (chromium for the browser tests, the Arduino toolchain for the
# firmware build, mosquitto for the MQTT tests, systemd for systemd-analyze, which checks the service
# unit) are installed with apt, as root or through sudo.
set -euo pipefail
cd "$(dirname "$0")"
source ./setup_env.sh
debian_packages=(python3-venv chromium g++ arduino-builder arduino-core-avr mosquitto systemd)
missing=()
for package in "${debian_packages[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt_install "${missing[@]}" ||
        echo "could not install ${missing[*]}: the tests that need them will say so (and fail under CI)" >&2
fi
setup_venv requirements.txt requirements-dev.txt
exec "$venv_dir/bin/python" -m pytest "$@"
