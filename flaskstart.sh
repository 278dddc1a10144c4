#!/usr/bin/env bash
# Set up (on first run) and start the camera server: gunicorn, one worker, on the host and port of
# config.txt (0.0.0.0:5000 by default).
# Camera messages show here; everything else goes to the log file (log_file in config.txt).
set -euo pipefail
cd "$(dirname "$0")"
source ./setup_env.sh
setup_venv requirements.txt
read -r port log_file < <("$venv_dir/bin/python" -c "import settings
chosen = settings.load_settings()
print(chosen.port, chosen.log_file)" 2>/dev/null || echo "${PORT:-5000} flask.log")
[[ $log_file = /* ]] || log_file="$(pwd -P)/$log_file"
echo "camera server starting on http://$(hostname -I 2>/dev/null | cut -d' ' -f1 || echo localhost):$port (log: $log_file)"
exec "$venv_dir/bin/gunicorn" -c gunicorn.conf.py 'app:main_app()'
