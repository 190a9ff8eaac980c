"""The modules a script can ``require()``: the built-ins and the operator's plugins."""

from __future__ import annotations

from pathlib import Path

from traitor.runtime.modules import HostModule
from traitor.runtime.modules.http import HttpSettings, http_module
from traitor.runtime.modules.kv import kv_module
from traitor.runtime.modules.plugins import PluginError, load_plugins


def builtin_modules(settings: HttpSettings) -> dict[str, HostModule]:
    """``http`` (sharing ``settings``' client: close it with ``await settings.close()``) and ``kv``."""
    return {m.name: m for m in (http_module(settings), kv_module())}


def all_modules(
    settings: HttpSettings, plugin_dir: Path | None
) -> tuple[dict[str, HostModule], list[PluginError]]:
    """Built-ins plus every loadable plugin (see ``plugins``), and the plugins skipped.

    A plugin can never replace a built-in: a clash is reported and the plugin skipped.
    """
    modules = builtin_modules(settings)
    plugins, errors = load_plugins(plugin_dir, reserved=modules.keys())
    modules.update(plugins)  # load_plugins has skipped (and reported) any that takes a built-in's name
    return modules, errors
