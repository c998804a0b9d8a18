#!/usr/bin/env bash
# The fresh-machine check: the README's Quick-start commands, verbatim, as a
# new user's machine would run them. In a new clone of HEAD (commit first:
# uncommitted work is not in it), with
#   - an empty .cache/ and an empty download cache (BDSNAP_DOWNLOAD_CACHE),
#   - no deno on PATH, an empty DENO_DIR and an empty npm cache, so npx
#     fetches Deno as on a new machine,
#   - apt lists that predate the security suite (where Debian 12's 6.12
#     kernels are), as on an old image: the host's lists less the security
#     ones, 60 days old, in a private apt state directory through APT_CONFIG.
#     The host's own apt state is never touched.
# Reports each command's exit status and time; exits non-zero if one failed.
#
#   bash scripts/check_fresh.sh [--dir DIR]
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
work=/var/tmp/bdsnap-fresh
while [ $# -gt 0 ]; do
	case "$1" in
	--dir) work=$2; shift ;;
	*) echo "usage: $0 [--dir DIR]" >&2; exit 2 ;;
	esac
	shift
done

say() { printf '[fresh] %s\n' "$*" >&2; }

rm -rf "$work"
mkdir -p "$work"
git clone -q "$repo" "$work/clone"
say "new clone of $(git -C "$repo" rev-parse --short HEAD) in $work/clone"

# Private apt state: the host's lists less every security suite.
host_lists=$(apt-config shell D Dir::State::Lists/d | sed -n "s/^D='\(.*\)'$/\1/p")
mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial"
for f in "${host_lists:-/var/lib/apt/lists}"/*; do
	[ -f "$f" ] || continue
	case "$(basename "$f")" in *security*|lock) continue ;; esac
	cp -p "$f" "$work/apt/lists/"
done
touch -d '60 days ago' "$work/apt/lists/"*
cat >"$work/apt/apt.conf" <<EOF
Dir::State::Lists "$work/apt/lists/";
Dir::Cache "$work/apt/cache/";
EOF
export APT_CONFIG="$work/apt/apt.conf"
if apt-cache search --names-only '^linux-image-6\.12\.' | grep -q .; then
	say "the private lists still list a 6.12 kernel: this check would prove nothing"
	exit 1
fi
say "private apt lists without the security suite: $work/apt/lists ($(ls "$work/apt/lists" | wc -l) files)"

# PATH without deno: directories that hold one are replaced by a farm of
# links to everything else in them.
farm="$work/path"
mkdir -p "$farm"
newpath=
IFS=: read -ra dirs <<<"$PATH"
for d in "${dirs[@]}" "$HOME/.deno/bin"; do
	[ -d "$d" ] || continue
	if [ -e "$d/deno" ]; then
		for f in "$d"/*; do
			[ "$(basename "$f")" = deno ] || ln -sf "$f" "$farm/$(basename "$f")" 2>/dev/null || true
		done
		d=$farm
	fi
	case ":$newpath:" in *":$d:"*) ;; *) newpath=${newpath:+$newpath:}$d ;; esac
done
export PATH=$newpath
if command -v deno >/dev/null; then
	say "deno is still on PATH ($(command -v deno))"
	exit 1
fi

export BDSNAP_DOWNLOAD_CACHE="$work/downloads"
export DENO_DIR="$work/deno-dir"
export npm_config_cache="$work/npm"
unset BDSNAP_VM_CACHE BDSNAP_APT_UPDATED

# The Quick-start commands, verbatim from the README's first sh block there.
mapfile -t cmds < <(awk '
	/^## Quick start/ { q = 1; next }
	/^## / { q = 0 }
	q && /^```sh/ { b = 1; next }
	q && b && /^```/ { exit }
	q && b && NF { sub(/[ \t]+#.*$/, ""); print }
' "$work/clone/README.md")
if [ "${#cmds[@]}" -eq 0 ]; then
	say "no commands found in the README's Quick start"
	exit 1
fi

results=()
status=0
for i in "${!cmds[@]}"; do
	cmd=${cmds[$i]}
	say "running: $cmd (log: $work/cmd$i.log)"
	start=$(date +%s)
	set +e
	(cd "$work/clone" && bash -c "$cmd") </dev/null >"$work/cmd$i.log" 2>&1
	rc=$?
	set -e
	secs=$(($(date +%s) - start))
	tail -n 3 "$work/cmd$i.log" | sed 's/^/    /' >&2
	results+=("$(printf '%-40s exit %-3s %5d s' "$cmd" "$rc" "$secs")")
	[ "$rc" = 0 ] || status=1
done

say "results (logs in $work):"
printf '  %s\n' "${results[@]}" >&2
exit "$status"
