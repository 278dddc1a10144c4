# Sourced by flaskstart.sh for --print-service and --install-service: the systemd unit that starts the
# server at boot and restarts it when it fails. Its text is here and nowhere else.

unit_name=camera-server.service
unit_dir=${SYSTEMD_UNIT_DIR:-/etc/systemd/system}      # the tests install into a folder of their own

# The unit for user $1, running this project's flaskstart.sh. A % is doubled (systemd's specifier sign).
service_unit() {
    local user=$1 project
    project=$(pwd -P)
    project=${project//%/%%}
    cat <<UNIT
# Installed by 'sudo ./flaskstart.sh --install-service'. systemctl status camera-server;
# journalctl -u camera-server shows the terminal's lines (camera messages); everything is in the log file.
[Unit]
Description=Camera server ($project)
Wants=network-online.target
After=network-online.target

[Service]
User=$user
WorkingDirectory=$project
ExecStart="$project/flaskstart.sh"
Restart=on-failure
RestartSec=5
# 3: the server cannot start with this config.txt and said why; starting it again would not help.
RestartPreventExitStatus=3
# gunicorn's graceful stop: SIGTERM to its master only, which gives the worker graceful_timeout (30 s)
# to release the camera and finish a recording, then kills it. Whatever is left after 40 s is killed.
KillSignal=SIGTERM
KillMode=mixed
TimeoutStopSec=40

[Install]
WantedBy=multi-user.target
UNIT
}

# Whom the service runs as: the user who ran sudo, or the current one.
service_user() {
    echo "${SUDO_USER:-$(id -un)}"
}

print_service() {
    service_unit "$(service_user)"
}

install_service() {
    if [ "$(id -u)" != 0 ]; then
        echo "installing a service needs root: run 'sudo ./flaskstart.sh --install-service'" >&2
        exit 1
    fi
    local user
    user=$(service_user)
    if [ "$user" = root ]; then
        echo "the service would run the camera server as root, and it answers the network: run" \
             "'sudo ./flaskstart.sh --install-service' from the account that should run it (one in the" \
             "video group), not from a root shell" >&2
        exit 1
    fi
    ensure_python_venv          # while root: the service's first start builds .venv as $user
    service_unit "$user" > "$unit_dir/$unit_name"
    systemctl daemon-reload
    systemctl enable --now "$unit_name"
    echo "installed $unit_dir/$unit_name: the camera server runs as $user now and at every boot" \
         "(systemctl status camera-server; journalctl -u camera-server -f)"
}
