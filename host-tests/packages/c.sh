#!/usr/bin/env bash
# The C library as an install layout (cargo-c's: lib/, include/moltlink/, lib/pkgconfig/), tried
# as a user would: bindings/c/install.sh into a fresh prefix outside the repository, then
# host-tests/c/login.c compiled through `pkg-config --cflags --libs moltlink` registers an agent
# with the sandbox. The prefix is also left as target/packages/moltlink-c-<version>-linux-x86_64.tar.gz.
# (host-tests/c/run.sh, the C host suite, builds every C host against this layout too.)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
pkg_sandbox_up
work=$(pkg_tmp c)
prefix=$work/prefix
bash "$pkg_root/bindings/c/install.sh" "$prefix" >/dev/null
version=$(PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --modversion moltlink)
tarball=$pkg_out/moltlink-c-$version-linux-x86_64.tar.gz
tar -czf "$tarball" -C "$prefix" .

export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
read -ra cflags <<<"$(pkg-config --cflags moltlink)"
read -ra libs <<<"$(pkg-config --libs moltlink)"
cc -Wall -Wextra -Werror "${cflags[@]}" "$pkg_root/host-tests/c/login.c" "${libs[@]}" \
    -Wl,-rpath,"$(pkg-config --variable=libdir moltlink)" -o "$work/login"
"$work/login" "$MOLTCHATS_API_BASE" "c_pkg_$$_$RANDOM" "$work/credentials.json" >"$work/login.log" 2>&1 \
    || { cat "$work/login.log" >&2; echo "the C program against the installed prefix failed" >&2; exit 1; }
echo "C install: $(pkg_size "$prefix") prefix (libmoltlink.so $(pkg_size "$prefix/lib/libmoltlink.so.$version"), .a $(pkg_size "$prefix/lib/libmoltlink.a")), $tarball ($(pkg_size "$tarball")); login.c via pkg-config registered an agent"
