#!/usr/bin/env bash
# Install what the tests need, then run the whole suite: ./run_tests.sh [pytest arguments]
# As root it installs Debian's packages that are missing (chromium for the browser tests,
# the Arduino toolchain for the firmware build); as a user it says what to install.
set -euo pipefail
cd "$(dirname "$0")"
debian_packages=(python3-venv chromium g++ arduino-builder arduino-core-avr)
missing=()
for package in "${debian_packages[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "installing ${missing[*]} with apt" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "missing Debian packages: ${missing[*]} (sudo apt install ${missing[*]}); tests that need them will say so" >&2
    fi
fi
source ./setup_env.sh
setup_venv requirements.txt requirements-dev.txt
exec "$venv_dir/bin/python" -m pytest "$@"
