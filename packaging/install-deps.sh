#!/bin/sh
# Installs, with apt-get, whatever irsafs needs to build (and, with --test, to run its tests)
# that is not installed yet. Safe to run again: it does nothing when everything is present.
set -eu

build_pkgs="gcc make pkg-config libc6-dev fuse3 libfuse3-dev libcurl4-openssl-dev libssl-dev libxml2-dev libjson-c-dev libmicrohttpd-dev"
test_pkgs="python3 python3-pytest python3-botocore python3-yaml clang valgrind util-linux"

want="$build_pkgs"
for arg in "$@"; do
	case "$arg" in
	--test) want="$want $test_pkgs" ;;
	*) echo "usage: $0 [--test]" >&2; exit 2 ;;
	esac
done

missing=""
for p in $want; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "irsafs: these packages are missing:$missing" >&2
	echo "irsafs: run 'make' as root, or install them with: sudo apt-get install$missing" >&2
	exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "irsafs: apt-get not found; install these packages by hand:$missing" >&2
	exit 1
fi
echo "irsafs: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || true
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
