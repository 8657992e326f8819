"""pytest plugin for `cpp_ext/sanitize.sh`: make ``nfdeploy._kernel`` the sanitizer build at
$NFDEPLOY_SANITIZED_KERNEL before any test imports it (``-p tests.sanitized_kernel``)."""

from __future__ import annotations

import importlib.util
import os
import sys

import nfdeploy

_path = os.environ["NFDEPLOY_SANITIZED_KERNEL"]
_spec = importlib.util.spec_from_file_location("nfdeploy._kernel", _path)
if _spec is None or _spec.loader is None:
    raise ImportError(f"cannot load the sanitized kernel at {_path}")
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
sys.modules["nfdeploy._kernel"] = _module
nfdeploy._kernel = _module  # type: ignore[attr-defined]


def pytest_report_header() -> str:
    return f"nfdeploy._kernel: {_module.__file__} (ASan + UBSan)"
