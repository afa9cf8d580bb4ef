#!/bin/sh
# Boots the novakvm test guest under QEMU in every exit mode and checks its
# serial output; a manual cross-check of the guest contract (docs/arch-guest.md)
# against a second VMM.  Needs qemu-system-x86 (apt-get install qemu-system-x86).
#
#   guest/check-qemu.sh [GUEST_ELF] [MACHINE]   (MACHINE: q35 (default) or microvm)
#
# Without GUEST_ELF it uses the newest build.rs output under target/.  On q35 it
# also runs the guest's virtio-blk driver (blk=1) against QEMU's virtio-blk-pci.
set -eu
cd "$(dirname "$0")/.."
elf=${1:-$(ls -t target/*/build/novakvm-*/out/novakvm-test-guest.elf 2>/dev/null | head -n 1)}
machine=${2:-q35}
[ -n "$elf" ] && [ -f "$elf" ] || { echo "no guest ELF (run cargo build first)" >&2; exit 2; }
qemu="qemu-system-x86_64 -enable-kvm -M $machine -m 128 -smp 2 -nodefaults -display none -serial stdio -no-reboot -kernel $elf"
fail=0
tmp=$(mktemp)
img=$(mktemp)
trap 'rm -f "$tmp" "$img"' EXIT
qemu_extra=
check() { # check <append> <timeout-s> <expected-rc> <pattern>...
	append=$1 t=$2 want=$3; shift 3
	timeout "$t" $qemu $qemu_extra -append "$append" >"$tmp" 2>/dev/null && rc=0 || rc=$?
	out=$(tr -d '\r' <"$tmp")
	for pat in "$@"; do
		if ! printf '%s\n' "$out" | grep -q -- "$pat"; then
			echo "FAIL [$append]: missing '$pat'"; fail=1
		fi
	done
	[ "$rc" = "$want" ] || { echo "FAIL [$append]: exit $rc, want $want"; fail=1; }
	echo "ok   [$append] rc=$rc"
}
banner='^novakvm-test-guest: mem_mib=128 vcpus=2$'
check "exit=poweroff" 30 0 "$banner" "exit=poweroff"
check "" 30 0 "$banner" "exit=reset"
check "exit=reset" 30 0 "exit=reset"
check "exit=triple" 30 0 "exit=triple"
check "exit=halt" 15 124 "$banner" "exit=halt"
check "garbage=1 touch=1 exit=poweroff" 60 0 "garbage ports=" "^mem_ok pages=" "exit=poweroff"
check "exit=bogus x=y" 30 0 "ignored cmdline word 'exit=bogus'" "exit=reset"
check "ticker=1" 15 124 "^tick 3$"
junk=$(head -c 3000 /dev/urandom | tr -dc 'a-z0-9=~ ' | head -c 1500)
check "$junk exit=poweroff" 30 0 "$banner" "exit=poweroff"
if [ "$machine" = q35 ]; then
	# The guest's virtio-blk driver against QEMU's modern-only virtio-blk-pci.
	head -c 1048576 /dev/zero >"$img"
	printf 'NOVAKVM-DISK-0!!' | dd of="$img" conv=notrunc 2>/dev/null
	qemu_extra="-drive if=none,id=d0,file=$img,format=raw -device virtio-blk-pci,drive=d0,disable-legacy=on"
	check "blk=1 exit=poweroff" 30 0 "blk0 capacity=2048 ro=0" \
		"blk0 read sector0=4e4f56414b564d2d4449534b2d302121" "blk0 wrote sector1" \
		"blk0 read past end status=1"
	[ "$(dd if="$img" bs=1 skip=512 count=16 2>/dev/null)" = "novakvm sector 1" ] ||
		{ echo "FAIL [blk=1]: sector 1 not written"; fail=1; }
	qemu_extra=
fi
[ "$fail" = 0 ] && echo "all checks passed ($machine)" || { echo "some checks FAILED ($machine)"; exit 1; }
