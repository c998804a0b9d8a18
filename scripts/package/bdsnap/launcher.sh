#!/bin/sh
# bdsnap, as packaged: the program's sources run by the Deno runtime they
# were packaged with, from the npm packages cached with them. Nothing is
# fetched (--cached-only), the lock file is never rewritten (--frozen), and
# a deno.json or package.json in the caller's directory is not looked at.
# Paths are relative to this script, so an unpacked copy (dpkg -x) runs too.
here=$(readlink -f "$0")
lib=$(dirname "$(dirname "$here")")/lib/bdsnap

# Deno keeps compile caches in DENO_DIR. Root's go to /var/cache/bdsnap/deno
# (which may be emptied at any time), with the packaged npm packages linked
# in; anyone else reads the packaged directory, which Deno only reads.
cache=/var/cache/bdsnap/deno
if [ "$(readlink "$cache/npm")" != "$lib/deno-dir/npm" ] && [ "$(id -u)" -eq 0 ]; then
	mkdir -p "$cache" 2>/dev/null && ln -sfn "$lib/deno-dir/npm" "$cache/npm" 2>/dev/null
fi
[ "$(readlink "$cache/npm")" = "$lib/deno-dir/npm" ] || cache=$lib/deno-dir

DENO_DIR=$cache
DENO_NO_UPDATE_CHECK=1
DENO_NO_PROMPT=1
DENO_NO_PACKAGE_JSON=1
# Children the CLI starts (a view's server) run offline too: cli/_lib/self_command.ts.
BDSNAP_CACHED_ONLY=1
export DENO_DIR DENO_NO_UPDATE_CHECK DENO_NO_PROMPT DENO_NO_PACKAGE_JSON BDSNAP_CACHED_ONLY
exec "$lib/deno" run -A --quiet --cached-only --frozen --config "$lib/app/deno.json" \
	"$lib/app/cli/main.ts" "$@"
