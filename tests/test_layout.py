"""The layout DESIGN.md draws: one package, camera_server, with a folder per part; at the top only the
entry files the user asked for; Flask only in the web part; tests import the package as it is."""
import ast
import importlib
import re

import pytest

from conftest import ROOT

PACKAGE = ROOT / "camera_server"
WEB = PACKAGE / "web"
ENTRY_FILES = {"app.py", "camera_usb.py", "camera_pi_cv.py", "trinket.py", "database_manager.py"}
SYS_PATH_CHANGE = re.compile(r"\bsys\.path\.(insert|append|extend)\b|\bsys\.path\s*\+?=")


def imported_modules(path):
    """The top-level names of the modules a file imports, anywhere in it (imports inside functions too)."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module.split(".")[0]


def test_only_the_web_part_imports_flask_or_werkzeug():
    importers = {path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py")
                 if {"flask", "werkzeug"} & set(imported_modules(path))}
    assert "web/app.py" in importers
    assert sorted(name for name in importers if not name.startswith("web/")) == []


def test_the_top_level_holds_no_python_but_the_entry_files():
    assert {path.name for path in ROOT.glob("*.py")} == ENTRY_FILES | {"gunicorn.conf.py"}
    folders = {path.relative_to(ROOT).parts[0] for path in ROOT.glob("*/**/*.py")
               if not path.relative_to(ROOT).parts[0].startswith(".")}
    assert folders == {"camera_server", "tests", "bench"}


def test_each_folder_of_the_package_is_a_package_with_an_init_that_holds_at_most_a_docstring():
    folders = {path.parent for path in PACKAGE.rglob("*.py") if "__pycache__" not in path.parts}
    for folder in folders:
        body = ast.parse((folder / "__init__.py").read_text()).body
        assert all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body), folder


@pytest.mark.parametrize("entry", sorted(ENTRY_FILES))
def test_entry_files_are_thin(entry):
    """Imports of the package, ``__all__`` and the ``__main__`` block: the code is in camera_server."""
    for node in ast.parse((ROOT / entry).read_text()).body:
        docstring = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        exports = isinstance(node, ast.Assign) and [target.id for target in node.targets] == ["__all__"]
        main = isinstance(node, ast.If) and ast.unparse(node.test) == "__name__ == '__main__'"
        package_import = isinstance(node, ast.ImportFrom) and node.module.startswith("camera_server.")
        assert docstring or exports or main or package_import, f"{entry}:{node.lineno}: {ast.unparse(node)}"


@pytest.mark.parametrize("entry, names", [
    ("app", ["create_app", "main_app", "stop_services"]),
    ("database_manager", ["media_cli", "main"]),
    ("trinket", ["Led", "Color", "build_color", "open_light", "LedUnavailable", "HeartRate"]),
    ("camera_usb", ["Camera", "OpenCVSource", "KinectSource", "CameraError", "FocusNotSupported"]),
    ("camera_pi_cv", ["Camera", "PiCameraSource", "CameraError", "FocusNotSupported"]),
])
def test_entry_files_give_the_names_the_original_project_describes(entry, names):
    module = importlib.import_module(entry)
    assert sorted(module.__all__) == sorted(names)
    for name in names:
        assert getattr(module, name).__module__.startswith("camera_server."), name


def test_no_test_changes_sys_path():
    """pytest.ini's ``pythonpath = .`` puts the project on the path; subprocesses run in ROOT."""
    changers = sorted(path.name for path in (ROOT / "tests").glob("*.py") if SYS_PATH_CHANGE.search(path.read_text()))
    assert changers == []


def test_the_readme_map_names_every_module():
    """The README's Architecture section is the map of the package: a module it does not name is lost."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Architecture"):readme.index("\n## ", readme.index("## Architecture") + 1)]
    named = set(re.findall(r"`([a-z0-9_]+\.py)`", section))
    modules = {path.name for path in PACKAGE.rglob("*.py") if path.name != "__init__.py"}
    assert modules - named == set()
