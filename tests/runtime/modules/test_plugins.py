"""Plugin discovery: entry points and ``<data-dir>/plugin/*.py``; broken plugins are skipped."""

from __future__ import annotations

import logging
import sys
import textwrap
from pathlib import Path

import pytest

from traitor.runtime.modules import CallContext, HostModule
from traitor.runtime.modules.http import HttpSettings
from traitor.runtime.modules.plugins import BUILTIN_NAMES, PluginError, load_plugins
from traitor.runtime.modules.registry import all_modules, builtin_modules

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "plugin-hello"
CTX = CallContext(run_id="run-1", job_id="job-1")

GOOD = '''
from traitor.runtime.modules import HostModule

def shout(ctx, text):
    return text.upper() + "!"

async def job(ctx):
    return ctx.job_id

def traitor_module():
    return HostModule(name="{name}", functions={{"shout": shout, "job": job}})
'''

CONSTANT = '''
from traitor.runtime.modules import HostModule
TRAITOR_MODULE = HostModule(name="const-mod", functions={"one": lambda ctx: 1}, source="module.exports = {one: __host.one};")
'''

BROKEN = {
    "syntax.py": "def traitor_module(:\n",
    "raises.py": "raise RuntimeError('plugin is on fire')\n",
    "exits.py": "import sys\nsys.exit(3)\n",
    "wrong_type.py": "def traitor_module():\n    return 42\n",
    "wrong_const.py": "TRAITOR_MODULE = {'name': 'x'}\n",
    "factory_raises.py": "def traitor_module():\n    raise ValueError('no config')\n",
    "nothing.py": "X = 1\n",
    "bad_name.py": "from traitor.runtime.modules import HostModule\n"
                   "def traitor_module():\n    return HostModule(name='Bad Name', functions={'f': lambda ctx: 1})\n",
    "lib_name.py": "from traitor.runtime.modules import HostModule\n"
                   "def traitor_module():\n    return HostModule(name='lib/x', functions={'f': lambda ctx: 1})\n",
    "bad_function.py": "from traitor.runtime.modules import HostModule\n"
                       "def traitor_module():\n    return HostModule(name='badfn', functions={'__proto__': lambda ctx: 1})\n",
    "not_callable.py": "from traitor.runtime.modules import HostModule\n"
                       "def traitor_module():\n    return HostModule(name='notcall', functions={'f': 3})\n",
    "empty.py": "from traitor.runtime.modules import HostModule\n"
                "def traitor_module():\n    return HostModule(name='empty')\n",
    "zz_clash_builtin.py": "from traitor.runtime.modules import HostModule\n"
                           "def traitor_module():\n    return HostModule(name='http', functions={'get': lambda ctx: 1})\n",
}

REASONS = {
    "syntax.py": "import failed: SyntaxError",
    "raises.py": "import failed: RuntimeError: plugin is on fire",
    "exits.py": "import failed: SystemExit: 3",
    "wrong_type.py": "expected a traitor.runtime.modules.HostModule, got int",
    "wrong_const.py": "expected a traitor.runtime.modules.HostModule, got dict",
    "factory_raises.py": "traitor_module() raised ValueError: no config",
    "nothing.py": "defines neither traitor_module() nor TRAITOR_MODULE",
    "bad_name.py": "invalid module name 'Bad Name'",
    "lib_name.py": "invalid module name 'lib/x'",
    "bad_function.py": "invalid function name '__proto__'",
    "not_callable.py": "function 'f' is not callable",
    "empty.py": "defines no functions and no source",
    "zz_clash_builtin.py": "the name 'http' is already taken by a built-in module",
}


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text))
    return folder


@pytest.fixture
def no_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hide installed plugins (such as the example) from tests about the plugin folder."""
    monkeypatch.setattr("traitor.runtime.modules.plugins._entry_points", lambda: [])


def fake_distribution(site: Path, name: str, entry_points: dict[str, str]) -> None:
    """An installed distribution as importlib.metadata sees one: a ``.dist-info`` folder."""
    info = site / f"{name.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[traitor.modules]\n{lines}\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on sys.path holding fake distributions and the example plugin's code.

    The example is declared here as the distribution ``traitor-hello``, so the test
    works whether or not ``pip install -e examples/plugin-hello`` was run (when it was,
    importlib.metadata keeps the first of the two same-named distributions: this one).
    """
    site = tmp_path / "site"
    site.mkdir()
    fake_distribution(site, "traitor-hello", {"hello": "traitor_hello:traitor_module"})
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(EXAMPLE))
    return site


def test_plugin_folder_good_and_broken(tmp_path: Path, caplog: pytest.LogCaptureFixture, no_entry_points: None) -> None:
    folder = write(tmp_path / "plugin", {
        "good.py": GOOD.format(name="good"),
        "constant.py": CONSTANT,
        "_private.py": "raise RuntimeError('never imported')\n",
        "notes.txt": "not a plugin",
        **BROKEN,
    })
    with caplog.at_level(logging.INFO, logger="traitor.plugins"):
        modules, errors = load_plugins(folder)

    assert sorted(modules) == ["const-mod", "good"]
    assert modules["good"].origin == str(folder / "good.py")
    assert modules["const-mod"].source == "module.exports = {one: __host.one};"

    by_file = {Path(e.origin).name: e for e in errors}
    assert sorted(by_file) == sorted(BROKEN)
    for name, reason in REASONS.items():
        assert reason in by_file[name].reason, (name, by_file[name])
    assert by_file["syntax.py"].reason.endswith("(%s:1)" % (folder / "syntax.py"))
    assert by_file["bad_name.py"].name is None and by_file["zz_clash_builtin.py"].name == "http"

    records = [r for r in caplog.records if r.name == "traitor.plugins"]
    infos = [r.getMessage() for r in records if r.levelno == logging.INFO]
    assert infos == [
        f"loaded plugin module 'const-mod' from {folder / 'constant.py'} (functions: one)",
        f"loaded plugin module 'good' from {folder / 'good.py'} (functions: shout, job)",
    ]
    problems = [r for r in records if r.levelno >= logging.WARNING]
    assert len(problems) == len(BROKEN)
    for name, reason in REASONS.items():
        assert any(name in r.getMessage() and reason in r.getMessage() for r in problems), name
    # a failed import leaves nothing behind in sys.modules
    assert not [m for m in sys.modules if m.startswith("traitor_plugin_raises_")]


async def test_plugin_functions_can_be_called(tmp_path: Path, no_entry_points: None) -> None:
    modules, errors = load_plugins(write(tmp_path / "plugin", {"good.py": GOOD.format(name="good")}))
    assert errors == []
    fns = modules["good"].functions
    assert fns["shout"](CTX, "hi") == "HI!"
    assert await fns["job"](CTX) == "job-1"


def test_clash_between_two_plugin_files(tmp_path: Path, caplog: pytest.LogCaptureFixture, no_entry_points: None) -> None:
    folder = write(tmp_path / "plugin", {"a.py": GOOD.format(name="same"), "b.py": GOOD.format(name="same")})
    with caplog.at_level(logging.INFO, logger="traitor.plugins"):
        modules, errors = load_plugins(folder)
    assert modules["same"].origin == str(folder / "a.py")
    assert [(Path(e.origin).name, e.name) for e in errors] == [("b.py", "same")]
    assert f"already taken by the plugin from {folder / 'a.py'}" in errors[0].reason
    assert any(r.levelno == logging.WARNING and "b.py" in r.getMessage() for r in caplog.records)


def test_missing_or_absent_plugin_folder(tmp_path: Path, no_entry_points: None) -> None:
    assert load_plugins(None) == ({}, [])
    assert load_plugins(tmp_path / "nope") == ({}, [])
    (tmp_path / "file").write_text("")
    modules, errors = load_plugins(tmp_path / "file")
    assert modules == {} and "not a directory" in errors[0].reason


def test_entry_point_discovery(site: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="traitor.plugins"):
        modules, errors = load_plugins(None)
    assert errors == []
    hello = modules["hello"]
    assert set(hello.functions) == {"greet", "wait"}
    assert hello.functions["greet"](CTX, "Ada") == "Hello, Ada!"
    assert "entry point hello = traitor_hello:traitor_module (traitor-hello 0.1.0)" in hello.origin
    assert hello.origin.startswith(str(EXAMPLE / "traitor_hello" / "__init__.py"))
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO] == [
        f"loaded plugin module 'hello' from {hello.origin} (functions: greet, wait)"
    ]


def test_entry_point_forms_and_failures(site: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write(site, {
        "ep_forms.py": """
            from traitor.runtime.modules import HostModule
            OBJ = HostModule(name="as-object", functions={"f": lambda ctx: 1})
            def other():
                return HostModule(name="as-factory", functions={"f": lambda ctx: 2})
        """,
        "ep_module.py": """
            from traitor.runtime.modules import HostModule
            TRAITOR_MODULE = HostModule(name="as-module", functions={"f": lambda ctx: 3})
        """,
        "ep_broken.py": "raise ImportError('missing dependency foo')\n",
    })
    fake_distribution(site, "traitor-more", {
        "as-object": "ep_forms:OBJ",
        "as-factory": "ep_forms:other",
        "as-module": "ep_module",
        "misnamed": "ep_forms:OBJ",
        "broken": "ep_broken:traitor_module",
        "absent": "no_such_module_anywhere:traitor_module",
        "dup-hello": "traitor_hello:traitor_module",
    })
    # a file in the plugin folder may not take an entry point's name either
    folder = write(tmp_path / "plugin", {"hello.py": GOOD.format(name="hello")})
    with caplog.at_level(logging.INFO, logger="traitor.plugins"):
        modules, errors = load_plugins(folder)
    assert sorted(modules) == ["as-factory", "as-module", "as-object", "hello"]
    assert modules["as-module"].functions["f"](CTX) == 3
    assert modules["as-object"].origin.startswith(str(site / "ep_forms.py") + " [entry point as-object = ep_forms:OBJ")
    assert modules["as-module"].origin.startswith(str(site / "ep_module.py"))
    assert "traitor_hello" in modules["hello"].origin
    reasons = {e.origin: e.reason for e in errors}
    assert reasons == {
        "entry point 'absent'": "import failed: ModuleNotFoundError: No module named 'no_such_module_anywhere'",
        "entry point 'broken'": "import failed: ImportError: missing dependency foo",
        "entry point 'dup-hello'": "the entry point is named 'dup-hello' but its module is named 'hello'",
        "entry point 'misnamed'": "the entry point is named 'misnamed' but its module is named 'as-object'",
        str(folder / "hello.py"): reasons[str(folder / "hello.py")],
    }
    assert reasons[str(folder / "hello.py")].startswith("the name 'hello' is already taken by the plugin from ")
    assert sum(r.levelno >= logging.WARNING for r in caplog.records) == 5


def test_registry_merges_builtins_and_plugins(tmp_path: Path, no_entry_points: None) -> None:
    settings = HttpSettings()
    builtins = builtin_modules(settings)
    assert builtins.keys() == BUILTIN_NAMES == {"http", "kv"}
    assert all(isinstance(m, HostModule) and m.origin == "builtin" for m in builtins.values())
    folder = write(tmp_path / "plugin", {
        "good.py": GOOD.format(name="good"),
        "kv.py": GOOD.format(name="kv"),
    })
    modules, errors = all_modules(settings, folder)
    assert sorted(modules) == ["good", "http", "kv"]
    assert modules["kv"].origin == "builtin"
    assert modules["kv"].functions.keys() == {"get", "set", "delete"}
    assert [(e.name, e.reason) for e in errors] == [("kv", "the name 'kv' is already taken by a built-in module")]
    assert isinstance(errors[0], PluginError) and "skipped" in str(errors[0])
