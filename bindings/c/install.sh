#!/usr/bin/env bash
# Install the C library like cargo-c does (the layout rustls-ffi follows), from an existing
# release build (cargo build --release -p moltlink --lib):
#   PREFIX/lib/libmoltlink.so.X.Y.Z       the cdylib, soname libmoltlink.so.X.Y (cargo-c's rule for
#   PREFIX/lib/libmoltlink.so.X.Y -> …    0.x versions: major.minor); libmoltlink.so -> … for -lmoltlink
#   PREFIX/lib/libmoltlink.so -> …
#   PREFIX/lib/libmoltlink.a              the staticlib
#   PREFIX/include/moltlink/moltlink.h    the cbindgen header
#   PREFIX/lib/pkgconfig/moltlink.pc      Cflags/Libs, and Libs.private for static linking
# Usage: bindings/c/install.sh PREFIX        (CARGO_TARGET_DIR: where the build is; default target/)
# The soname is set with patchelf when it is installed (cargo-c passes -Wl,-soname at link time);
# without patchelf the library keeps no soname and programs record libmoltlink.so itself.
# Alternative: `cargo install cargo-c` then `cargo cinstall --release -p moltlink --prefix PREFIX`.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 PREFIX" >&2; exit 2; }
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$1"
prefix=$(cd "$1" && pwd)
build=${CARGO_TARGET_DIR:-$root/target}/release
for f in "$build/libmoltlink.so" "$build/libmoltlink.a"; do
    [ -f "$f" ] || { echo "missing $f: cargo build --release -p moltlink --lib first" >&2; exit 1; }
done
version=$(sed -n '/^\[package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)
IFS=. read -r major minor _ <<<"$version"
if [ "$major" = 0 ]; then sover=$major.$minor; else sover=$major; fi

libdir=$prefix/lib
incdir=$prefix/include/moltlink
mkdir -p "$libdir/pkgconfig" "$incdir"
rm -f "$libdir"/libmoltlink.so*
install -m 0755 "$build/libmoltlink.so" "$libdir/libmoltlink.so.$version"
if command -v patchelf >/dev/null; then
    patchelf --set-soname "libmoltlink.so.$sover" "$libdir/libmoltlink.so.$version"
    ln -s "libmoltlink.so.$version" "$libdir/libmoltlink.so.$sover"
else
    echo "install.sh: patchelf not found, libmoltlink.so keeps no soname" >&2
fi
ln -s "libmoltlink.so.$version" "$libdir/libmoltlink.so"
install -m 0644 "$build/libmoltlink.a" "$libdir/libmoltlink.a"
# What an installed library ships (cargo-c strips too): no debug info in the static
# archive (59 -> 51 MB: most of it is the code of std and every dependency), nor the shared
# library's local symbols (5.9 -> 5.6 MB).
if command -v strip >/dev/null; then
    strip --strip-debug "$libdir/libmoltlink.a"
    strip --strip-unneeded "$libdir/libmoltlink.so.$version"
fi
install -m 0644 "$root/bindings/c/moltlink.h" "$incdir/moltlink.h"

# What a program linking libmoltlink.a statically also needs: Rust's std runtime libraries, as
# rustc prints them for a staticlib on this target. The crate's own native code (libopus) is
# bundled inside the archive; host-tests/packages/c.sh checks a static link with exactly this.
probe=$(mktemp -d)
echo 'pub fn probe() {}' > "$probe/probe.rs"
private=$(rustc --crate-type staticlib --print native-static-libs -o "$probe/libprobe.a" "$probe/probe.rs" 2>&1 \
    | sed -n 's/.*native-static-libs: //p')
rm -rf "$probe"
[ -n "$private" ] || { echo "rustc printed no native-static-libs" >&2; exit 1; }

cat > "$libdir/pkgconfig/moltlink.pc" <<PC
prefix=$prefix
exec_prefix=\${prefix}
libdir=\${exec_prefix}/lib
includedir=\${prefix}/include

Name: moltlink
Description: Sans-IO client core for MoltChats, Moltbook DMs and Moltspaces (C API)
Version: $version
Libs: -L\${libdir} -lmoltlink
Libs.private: $private
Cflags: -I\${includedir}/moltlink
PC
echo "installed moltlink $version into $prefix ($(du -sh "$prefix" | cut -f1))"
