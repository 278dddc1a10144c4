# Sourced by flaskstart.sh and run_tests.sh: make .venv and install requirements when they changed.
# On a Raspberry Pi the venv sees the system's packages, because picamera2 comes from apt.

venv_dir=${VENV:-.venv}

needs_system_packages() {
    grep -qs "Raspberry Pi" /proc/device-tree/model || python3 -c "import picamera2" 2>/dev/null
}

# apt-get install the named Debian packages, as root or through sudo; fails when neither is possible.
apt_install() {
    local runner=()
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || return 1
        runner=(sudo)
    fi
    echo "installing $* with apt" >&2
    "${runner[@]}" apt-get update -qq &&
        "${runner[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_python_venv() {
    if python3 -c "import ensurepip, venv" 2>/dev/null; then
        return
    fi
    apt_install python3-venv || {
        echo "python3-venv is missing: run 'sudo apt install python3-venv'" >&2
        exit 1
    }
}

setup_venv() {
    if [ ! -x "$venv_dir/bin/python" ]; then
        ensure_python_venv
        if needs_system_packages; then
            python3 -m venv --system-site-packages "$venv_dir"
        else
            python3 -m venv "$venv_dir"
        fi
    fi
    local stamp="$venv_dir/.installed-$(echo "$@" | tr ' /' '+_').sha256"
    local wanted
    wanted=$(cat "$@" | sha256sum | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
        echo "installing Python packages into $venv_dir (first run takes a minute)" >&2
        "$venv_dir/bin/python" -m pip install --quiet --disable-pip-version-check $(printf -- '-r %s ' "$@")
        echo "$wanted" > "$stamp"
    fi
}
