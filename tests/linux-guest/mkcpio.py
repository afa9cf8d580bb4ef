#!/usr/bin/env python3
"""Writes a gzip'd newc cpio initramfs: /init, /bin/busybox, /bin/sh -> busybox.

usage: mkcpio.py OUT.cpio.gz BUSYBOX INIT
"""
import gzip
import sys


def entry(name, mode, data=b"", rdev=(0, 0), ino=[0]):
    ino[0] += 1
    name_b = name.encode() + b"\0"
    hdr = "070701" + "".join(
        "%08x" % v
        for v in (ino[0], mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0)
    )
    out = hdr.encode() + name_b
    out += b"\0" * (-len(out) % 4)
    out += data
    out += b"\0" * (-len(out) % 4)
    return out


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    out_path, busybox, init = sys.argv[1:]
    with open(busybox, "rb") as f:
        bb = f.read()
    with open(init, "rb") as f:
        init_data = f.read()
    blob = b"".join(
        [
            entry("bin", 0o040755),
            entry("dev", 0o040755),
            entry("dev/console", 0o020600, rdev=(5, 1)),
            entry("proc", 0o040755),
            entry("sys", 0o040755),
            entry("bin/busybox", 0o100755, bb),
            entry("bin/sh", 0o120777, b"busybox"),
            entry("init", 0o100755, init_data),
            entry("TRAILER!!!", 0),
        ]
    )
    with gzip.open(out_path, "wb", compresslevel=6) as f:
        f.write(blob)


if __name__ == "__main__":
    main()
