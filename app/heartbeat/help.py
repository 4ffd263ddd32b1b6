"""The ``heartbeat`` command's argument parser class: help that shows every default.

An option with a default of its own shows it, as argparse's ``ArgumentDefaultsHelpFormatter``
does; an option that overrides a setting (its default is ``None``) names the setting and
that setting's default instead, since that is where the value then comes from.
"""

from __future__ import annotations

import argparse
from typing import Any

from heartbeat.settings import Settings


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or action.default is argparse.SUPPRESS:
            return text
        field = Settings.model_fields.get(action.dest)
        if action.default is None and field is not None:
            env, default = Settings.env_name(action.dest), field.default
            shown = env if default is None or default == "" else f"{env} or {default}"
            return f"{text} (default: {shown})".lstrip()
        if action.default in (None, False) or isinstance(action, argparse._VersionAction):
            return text
        if not action.option_strings and action.nargs not in ("?", "*"):
            return text
        return f"{text} (default: %(default)s)".lstrip()


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose help shows defaults; its sub-commands' parsers are too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
