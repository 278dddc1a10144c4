#!/usr/bin/env bash
# Set up (on first run) and start the camera server: gunicorn, one worker, on the host and port of
# config.txt (0.0.0.0:5000 by default).
# Camera messages show here too; everything goes to the log file (log_file in config.txt).
#   ./flaskstart.sh --print-service          the systemd unit that starts the server at boot
#   sudo ./flaskstart.sh --install-service   install it for the user running sudo, and start it
set -euo pipefail
cd "$(dirname "$0")"
source ./setup_env.sh
case "${1:-}" in
    "") ;;
    --print-service | --install-service)
        source ./systemd_service.sh
        if [ "$1" = --print-service ]; then print_service; else install_service; fi
        exit ;;
    *)
        echo "unknown option $1: use --print-service or --install-service, or nothing to start the server" >&2
        exit 2 ;;
esac
setup_venv requirements.txt
read -r port log_file < <("$venv_dir/bin/python" -c "from camera_server import settings
chosen = settings.load_settings()
print(chosen.port, chosen.log_file)" 2>/dev/null || echo "${PORT:-5000} flask.log")
[[ $log_file = /* ]] || log_file="$(pwd -P)/$log_file"
echo "camera server starting on http://$(hostname -I 2>/dev/null | cut -d' ' -f1 || echo localhost):$port (log: $log_file)"
exec "$venv_dir/bin/gunicorn" -c gunicorn.conf.py 'app:main_app()'
