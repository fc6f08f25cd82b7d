"""Optional SDKs behind some operator commands, and the message that says how to install them.

A base install (``pip install atelier``) runs every ``atelier ops`` and ``atelier dlq`` command;
only the S3 health check needs an SDK more (minio), which the ``ops`` extra brings. Without it,
:func:`require` raises an ``ImportError`` whose message names the extra, and the command prints
that one line instead of a traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: the extra that brings every SDK an operator command needs
OPS_EXTRA = "ops"


def missing_extra_message(module: str, *, needed_for: str, extra: str = OPS_EXTRA) -> str:
    """What to tell the operator: what needs ``module`` and the pip command that installs it."""
    return f"{needed_for} needs the {module} package: pip install 'atelier[{extra}]'"


def require(module: str, *, needed_for: str, extra: str = OPS_EXTRA) -> ModuleType:
    """Import ``module``, or raise ``ImportError`` saying what needs it and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        message = missing_extra_message(module, needed_for=needed_for, extra=extra)
        raise ImportError(message, name=module) from None
