#!/usr/bin/env bash
# Build nfdeploy._kernel with AddressSanitizer + UndefinedBehaviorSanitizer and run the kernel
# tests (tests/test_kernel.py and the hypothesis properties in tests/test_kernel_properties.py)
# against that build. Any sanitizer finding aborts the run with a non-zero exit.
#   bash cpp_ext/sanitize.sh            # uses .venv/bin/python (PYTHON=... to override)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
CXX=${CXX:-g++}
"$PY" -c "import pybind11, hypothesis" 2>/dev/null || "$PY" -m pip install -q pybind11 hypothesis
OUT=${SANITIZE_DIR:-build/sanitize}
mkdir -p "$OUT"
read -r -a INCLUDES < <("$PY" -c "import pybind11, sysconfig; print('-I' + pybind11.get_include(), '-I' + sysconfig.get_paths()['include'])")
SO="$OUT/_kernel$("$PY" -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")"
"$CXX" -std=c++17 -O1 -g -fno-omit-frame-pointer -ffp-contract=off -Wall -Wextra \
    -fsanitize=address,undefined -fno-sanitize-recover=all -shared -fPIC -pthread \
    "${INCLUDES[@]}" cpp_ext/bitflip.cpp -o "$SO"
echo "sanitized kernel: $SO"
# Python itself is not instrumented: ASan must come first in the process, libstdc++ must be
# loaded when ASan starts (else its __cxa_throw interceptor aborts on the first C++ exception),
# and its leak checker would report the interpreter's own allocations.
LD_PRELOAD="$("$CXX" -print-file-name=libasan.so) $("$CXX" -print-file-name=libstdc++.so)" \
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:detect_stack_use_after_return=1 \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
NFDEPLOY_SANITIZED_KERNEL="$SO" \
    "$PY" -m pytest -q -p tests.sanitized_kernel -p no:cacheprovider \
    tests/test_kernel.py tests/test_kernel_properties.py \
    --deselect tests/test_kernel.py::test_kernel_module_does_not_import_torch
