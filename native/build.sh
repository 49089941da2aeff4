#!/bin/sh
# Builds native/build/imgx-run, the namespace executor of `imgx run --runtime native`.
# No C compiler: say so and succeed, so that `npm ci` never fails because of it.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cc=${CC:-cc}
if ! command -v "$cc" >/dev/null 2>&1; then
	echo "imgx: no C compiler ($cc) found; the native runtime (imgx-run) is not built" >&2
	exit 0
fi
mkdir -p "$here/build"
# Build into a temporary name and rename, so a failed build never leaves a stale binary looking new.
"$cc" -O2 -Wall -Wextra -Werror -std=gnu11 -o "$here/build/imgx-run.tmp" "$here"/*.c
mv -f "$here/build/imgx-run.tmp" "$here/build/imgx-run"
