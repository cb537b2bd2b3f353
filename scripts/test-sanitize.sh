#!/usr/bin/env bash
# Build the addon with AddressSanitizer + UndefinedBehaviorSanitizer into build-sanitize/ and
# run the test suite against it (every kernel test runs on `cpu` there). Node itself is not
# instrumented, so the sanitizer runtimes are preloaded; leak checking is off (V8 keeps memory
# for the life of the process by design).
#   npm run test:sanitize [-- vitest args, e.g. test/nn.test.ts]
set -euo pipefail
cd "$(dirname "$0")/.."
KILN_NATIVE_BUILD=build-sanitize node scripts/build-native.mjs --force --sanitize
export KILN_NATIVE_BUILD=build-sanitize
export LD_PRELOAD="$(g++ -print-file-name=libasan.so):$(g++ -print-file-name=libubsan.so)"
export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:detect_odr_violation=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
npx vitest run --pool=forks "$@"
