#!/bin/sh
# Prepares a stock Debian Linux kernel and a busybox initramfs for
# tests/vmm_linux_boot.rs (and for manual runs of `novakvm vmm`).
#
#   tests/linux-guest/prepare.sh [OUTDIR]      (default: target/linux-guest)
#
# Writes OUTDIR/vmlinuz (from Debian's linux-image-cloud-amd64, fetched with
# `apt-get download`, no install) and OUTDIR/initramfs.cpio.gz (busybox from
# busybox-static, /init from tests/linux-guest/init).  Prints the two paths,
# one per line.  Idempotent: reuses what is already there.
# Needs: apt-get/apt-cache/dpkg-deb (Debian), python3, gzip.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../../target/linux-guest}
mkdir -p "$out"
out=$(cd "$out" && pwd)
dl=$out/debs
mkdir -p "$dl"

# The metapackage only depends on the versioned image package: resolve it.
fetch_deb() { # fetch_deb <package>  -> path of the .deb in $dl
	pkg=$1
	deb=$(ls "$dl"/"${pkg}"_*.deb 2>/dev/null | head -n 1 || true)
	if [ -z "$deb" ]; then
		(cd "$dl" && apt-get download "$pkg" >&2) || {
			echo "apt-get download $pkg failed (run apt-get update?)" >&2; exit 1; }
		deb=$(ls "$dl"/"${pkg}"_*.deb | head -n 1)
	fi
	echo "$deb"
}

if [ ! -s "$out/vmlinuz" ]; then
	img=$(apt-cache depends linux-image-cloud-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n 1)
	[ -n "$img" ] || { echo "cannot resolve linux-image-cloud-amd64 (apt-get update?)" >&2; exit 1; }
	deb=$(fetch_deb "$img")
	rm -rf "$out/kernel-x"
	dpkg-deb -x "$deb" "$out/kernel-x"
	cp "$(ls "$out"/kernel-x/boot/vmlinuz-* | head -n 1)" "$out/vmlinuz.tmp"
	mv "$out/vmlinuz.tmp" "$out/vmlinuz"
	rm -rf "$out/kernel-x"
fi

if [ ! -s "$out/initramfs.cpio.gz" ] || [ "$here/init" -nt "$out/initramfs.cpio.gz" ]; then
	bb=""
	if [ -x /bin/busybox ] && file -L /bin/busybox 2>/dev/null | grep -q 'statically linked'; then
		bb=/bin/busybox
	else
		deb=$(fetch_deb busybox-static)
		rm -rf "$out/busybox-x"
		dpkg-deb -x "$deb" "$out/busybox-x"
		bb=$out/busybox-x/bin/busybox
	fi
	python3 "$here/mkcpio.py" "$out/initramfs.cpio.gz.tmp" "$bb" "$here/init"
	mv "$out/initramfs.cpio.gz.tmp" "$out/initramfs.cpio.gz"
	rm -rf "$out/busybox-x"
fi
echo "$out/vmlinuz"
echo "$out/initramfs.cpio.gz"
