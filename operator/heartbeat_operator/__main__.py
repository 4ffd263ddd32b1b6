"""``python -m heartbeat_operator``: the operator with the pipeline's settings and logging."""

from __future__ import annotations

import sys

from heartbeat import logs
from heartbeat.errors import SettingsError
from heartbeat.settings import load_settings
from heartbeat_operator.main import EXIT_USAGE, run


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"heartbeat: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logs.configure(settings)
    return run(settings, namespaces=sys.argv[1:] or None)


if __name__ == "__main__":
    sys.exit(main())
