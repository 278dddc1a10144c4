#!/usr/bin/env bash
# Set up (on first run) and start the camera server: gunicorn, one worker, on 0.0.0.0:5000.
# Camera messages show here; everything else goes to the log file (log_file in config.txt).
set -euo pipefail
cd "$(dirname "$0")"
source ./setup_env.sh
setup_venv requirements.txt
log_file=$("$venv_dir/bin/python" -c "import app, settings; print(app._resolve(settings.load_settings().log_file))" 2>/dev/null || echo flask.log)
export ACCESS_LOG="${ACCESS_LOG:-$log_file}" ERROR_LOG="${ERROR_LOG:-$log_file}"
echo "camera server starting on http://$(hostname -I 2>/dev/null | cut -d' ' -f1 || echo localhost):${PORT:-5000} (log: $log_file)"
exec "$venv_dir/bin/gunicorn" -c gunicorn.conf.py 'app:main_app()'
