#!/bin/sh
# Builds the libssh2 that `make LIBSSH2=patched` links: Debian 13's source
# package of libssh2 1.11.1 (Debian's own patches applied), our patches from
# this directory on top, configured for OpenSSL and zlib, static, into
# build/prefix, with Debian's build flags (dpkg-buildflags). Used by the
# Makefile; needs dpkg-dev (apt-get source unpacks with dpkg-source) and
# debian-archive-keyring, which apt itself depends on.
#
# apt-get runs with a private configuration under build/apt: its own sources
# list, lists and cache, so that the machine's apt sources and state are
# never touched, on Debian 12 as on 13.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=$here/build
apt=$out/apt
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

for tool in apt-get dpkg-source cc make; do
	command -v $tool >/dev/null || {
		echo "$0: $tool is missing (scripts/install-deps build)" >&2
		exit 69
	}
done
[ -r $keyring ] || { echo "$0: $keyring is missing" \
    "(apt-get install debian-archive-keyring)" >&2; exit 69; }

# The security archive too: a fix to libssh2 reaches it first.
mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/etc"
cat > "$apt/etc/sources.list" <<LIST
deb-src [signed-by=$keyring] $mirror trixie main
deb-src [signed-by=$keyring] http://deb.debian.org/debian-security trixie-security main
LIST
set -- -q -o Dir::Etc::SourceList="$apt/etc/sources.list" \
    -o Dir::Etc::SourceParts=/dev/null -o Dir::Etc::Preferences=/dev/null \
    -o Dir::Etc::PreferencesParts=/dev/null \
    -o Dir::State::Lists="$apt/lists" -o Dir::Cache="$apt/cache" \
    -o APT::Sandbox::User="$(id -un)"
apt-get "$@" update
# The sources are unpacked outside the tree, and gone however this ends:
# relayd's Makefile would take their *.d files for its own, and Debian's
# package build would update and restore their config.guess.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/relayd-libssh2.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
rm -rf "$out/prefix"
(cd "$tmp" && apt-get "$@" source libssh2)
src=$tmp/libssh2-1.11.1
[ -d "$src" ] || { echo "$0: Debian 13's libssh2 is no longer 1.11.1;" \
    "the patches here are for 1.11.1" >&2; exit 65; }

# Run from make: its flags and any VAR=value given to it (dh_auto_build
# gives INSTALL=...) are relayd's.
unset MAKEFLAGS MFLAGS MAKELEVEL INSTALL
cd "$src"
for p in "$here"/*.patch; do
	[ -e "$p" ] || continue
	echo "applying $(basename "$p")"
	patch -p1 --forward --quiet < "$p"
done
./configure --quiet --prefix="$out/prefix" --disable-shared --enable-static \
    --with-pic --with-crypto=openssl --with-libz --disable-examples-build \
    --disable-docker-tests --disable-sshd-tests --disable-dependency-tracking \
    CFLAGS="$(dpkg-buildflags --get CFLAGS)" \
    CPPFLAGS="$(dpkg-buildflags --get CPPFLAGS)"
make -s -j"$(nproc)" -C src
# The library last: it is what the Makefile looks for.
make -s install-includeHEADERS install-pkgconfigDATA >/dev/null
make -s -C src install >/dev/null
echo "libssh2 $(sed -n 's/^Version: //p' "$out/prefix/lib/pkgconfig/libssh2.pc")" \
    "with $(ls "$here"/*.patch 2>/dev/null | wc -l) patch(es) in $out/prefix"
