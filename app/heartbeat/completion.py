"""`heartbeat completion bash|zsh`: a shell completion script made from the argument parser.

shtab writes a static script from the parser, so every command, option and choice
completes as the parser defines it, and pressing TAB runs no Python (argcomplete would
start ``heartbeat`` on every TAB) and zsh gets a native script, not bash's through
``bashcompinit``.
"""

from __future__ import annotations

import argparse

import shtab

SHELLS = ("bash", "zsh")


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    return str(shtab.complete(parser, shell=shell))
