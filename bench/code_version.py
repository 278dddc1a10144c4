"""Which code a benchmark measured: the commit, and a digest of the server's Python files."""
import hashlib
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def code_version():
    """The commit and a sha1 of the server's *.py files, the top-level ones and the camera_server package's
    (the tree may hold uncommitted work)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, timeout=10).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        commit = "?"
    digest = hashlib.sha1()
    for path in sorted([*REPO.glob("*.py"), *REPO.glob("camera_server/**/*.py")]):
        digest.update(path.relative_to(REPO).as_posix().encode() + b"\0" + path.read_bytes())
    return f"commit {commit}, server *.py sha1 {digest.hexdigest()[:12]}"
