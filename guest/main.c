/*
 * novakvm test guest, 64-bit part.  Freestanding: no libc, no SSE, no
 * interrupts.  Contract: docs/arch-guest.md.  Output goes to COM1, polled.
 */
#include <stdint.h>
#include <stddef.h>

#define COM1 0x3f8
#define START_INFO_MAGIC 0x336ec578u
#define CMDLINE_MAX 4096
#define PAGE 4096ull
#define GIB (1ull << 30)
#define MIB (1ull << 20)

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;   /* version >= 1 */
	uint32_t memmap_entries; /* version >= 1 */
	uint32_t reserved;
};

struct hvm_memmap_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};

extern uint64_t pt_pml4[512];
extern uint64_t pt_pdpt[512];
extern char _end[];

/* ---- port and memory helpers ------------------------------------------ */

static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outw(uint16_t port, uint16_t v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) { uint8_t v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint32_t inl(uint16_t port) { uint32_t v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }

static inline void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
	__asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static inline void reload_cr3(void)
{
	uint64_t v;
	__asm__ volatile("mov %%cr3, %0; mov %0, %%cr3" : "=r"(v) : : "memory");
}

static __attribute__((noreturn)) void halt_forever(void)
{
	for (;;)
		__asm__ volatile("cli; hlt");
}

void *memset(void *d, int c, size_t n)
{
	uint8_t *p = d;
	while (n--)
		*p++ = (uint8_t)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	uint8_t *p = d;
	const uint8_t *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

static uint8_t rd8(uint64_t a) { return *(volatile uint8_t *)(uintptr_t)a; }
static uint16_t rd16(uint64_t a) { return *(volatile uint16_t *)(uintptr_t)a; }
static uint32_t rd32(uint64_t a) { return *(volatile uint32_t *)(uintptr_t)a; }
static uint64_t rd64(uint64_t a) { return *(volatile uint64_t *)(uintptr_t)a; }
static void wr8(uint64_t a, uint8_t v) { *(volatile uint8_t *)(uintptr_t)a = v; }
static void wr32(uint64_t a, uint32_t v) { *(volatile uint32_t *)(uintptr_t)a = v; }
static void wr64(uint64_t a, uint64_t v) { *(volatile uint64_t *)(uintptr_t)a = v; }

/* ---- serial ------------------------------------------------------------ */

static void serial_init(void)
{
	outb(COM1 + 1, 0x00); /* no interrupts */
	outb(COM1 + 3, 0x80); /* DLAB */
	outb(COM1 + 0, 0x01); /* 115200 */
	outb(COM1 + 1, 0x00);
	outb(COM1 + 3, 0x03); /* 8N1 */
	outb(COM1 + 2, 0xC7); /* FIFO on, cleared */
	outb(COM1 + 4, 0x03); /* DTR | RTS */
}

static void putc_serial(char c)
{
	/* Bounded wait for THRE so a VMM without LSR emulation cannot hang us. */
	for (int i = 0; i < 100000; i++)
		if (inb(COM1 + 5) & 0x20)
			break;
	outb(COM1, (uint8_t)c);
}

static void puts_serial(const char *s)
{
	while (*s) {
		if (*s == '\n')
			putc_serial('\r');
		putc_serial(*s++);
	}
}

static void put_dec(uint64_t v)
{
	char buf[24];
	int i = 0;
	do {
		buf[i++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (i)
		putc_serial(buf[--i]);
}

static void put_hex(uint64_t v)
{
	puts_serial("0x");
	int started = 0;
	for (int s = 60; s >= 0; s -= 4) {
		unsigned d = (v >> s) & 0xf;
		if (d || started || s == 0) {
			putc_serial("0123456789abcdef"[d]);
			started = 1;
		}
	}
}

/* ---- page tables ------------------------------------------------------- */

static uint64_t pool_next; /* bump allocator for page-table pages, after _end */
static uint64_t phys_limit; /* 1 << MAXPHYADDR, capped at 512 GiB (one PDPT) */

static uint64_t alloc_page(void)
{
	uint64_t p = pool_next;
	pool_next += PAGE;
	memset((void *)(uintptr_t)p, 0, PAGE);
	return p;
}

/* Identity-map the 1 GiB slot containing addr with 2 MiB pages. */
static int map_gib(uint64_t addr)
{
	uint64_t i = addr / GIB;
	if (addr >= phys_limit)
		return 0;
	if (pt_pdpt[i] & 1)
		return 1;
	uint64_t pd = alloc_page();
	for (uint64_t j = 0; j < 512; j++)
		((uint64_t *)(uintptr_t)pd)[j] = (i * GIB + j * 2 * MIB) | 0x83;
	pt_pdpt[i] = pd | 0x3;
	reload_cr3();
	return 1;
}

/* ---- memory map -------------------------------------------------------- */

static const struct hvm_memmap_entry *memmap;
static uint32_t memmap_n;

static uint8_t cmos(uint8_t reg)
{
	outb(0x70, reg);
	return inb(0x71);
}

/* Bytes of RAM: sum of type-1 memmap entries; CMOS (QEMU layout) without one. */
static uint64_t ram_bytes(uint64_t *top)
{
	uint64_t sum = 0;
	*top = 0;
	if (memmap) {
		for (uint32_t i = 0; i < memmap_n; i++) {
#ifdef DEBUG
			puts_serial("dbg memmap "); put_hex(memmap[i].addr); putc_serial(' '); put_hex(memmap[i].size); putc_serial(' '); put_dec(memmap[i].type); puts_serial("\n");
#endif
			if (memmap[i].type != 1)
				continue;
			sum += memmap[i].size;
			if (memmap[i].addr + memmap[i].size > *top)
				*top = memmap[i].addr + memmap[i].size;
		}
		return sum;
	}
	uint64_t below16 = ((uint64_t)cmos(0x30) | (uint64_t)cmos(0x31) << 8) * 1024;
	uint64_t above16 = ((uint64_t)cmos(0x34) | (uint64_t)cmos(0x35) << 8) * 65536;
	uint64_t above4g = ((uint64_t)cmos(0x5b) | (uint64_t)cmos(0x5c) << 8 | (uint64_t)cmos(0x5d) << 16) * 65536;
	if (above16)
		sum = 16 * MIB + above16;
	else
		sum = MIB + below16;
	*top = sum;
	if (above4g) {
		*top = 4 * GIB + above4g;
		sum += above4g;
	}
	return sum;
}

/* ---- MP table ---------------------------------------------------------- */

static int checksum_ok(uint64_t a, uint32_t len)
{
	uint8_t s = 0;
	for (uint32_t i = 0; i < len; i++)
		s += rd8(a + i);
	return s == 0;
}

static uint64_t mp_search(uint64_t start, uint64_t len)
{
	for (uint64_t a = start; a + 16 <= start + len; a += 16)
		if (rd32(a) == 0x5f504d5f /* "_MP_" */ && rd8(a + 8) == 1 && checksum_ok(a, 16))
			return a;
	return 0;
}

/* Enabled processor entries of the MP configuration table; 0 if no table. */
static uint32_t mp_cpus(void)
{
	uint64_t fp = 0;
	uint64_t ebda = (uint64_t)rd16(0x40e) << 4;
	uint64_t base_kib = rd16(0x413);
	if (base_kib < 64 || base_kib > 640)
		base_kib = 639;
	if (ebda >= 0x80000 && ebda < 0xa0000)
		fp = mp_search(ebda, 1024);
	if (!fp)
		fp = mp_search(base_kib * 1024 - 1024, 1024);
	if (!fp)
		fp = mp_search(0xf0000, 0x10000);
	if (!fp)
		return 0;
	if (rd8(fp + 11) != 0)
		return 2; /* MP spec default configurations have two processors */
	uint64_t ct = rd32(fp + 4);
	if (ct == 0 || ct >= 4 * GIB - 64 || rd32(ct) != 0x504d4350 /* "PCMP" */)
		return 0;
	uint32_t len = rd16(ct + 4);
	if (len < 44 || !checksum_ok(ct, len))
		return 0;
	uint32_t count = rd16(ct + 34), cpus = 0;
#ifdef DEBUG
	puts_serial("dbg fp="); put_hex(fp); puts_serial(" ct="); put_hex(ct); puts_serial(" count="); put_dec(count); puts_serial("\n");
#endif
	uint64_t e = ct + 44, end = ct + len;
	for (uint32_t i = 0; i < count && e < end; i++) {
		uint8_t type = rd8(e);
#ifdef DEBUG
		puts_serial("dbg entry type="); put_dec(type); puts_serial(" b1="); put_hex(rd8(e+1)); puts_serial(" b3="); put_hex(rd8(e+3)); puts_serial("\n");
#endif
		if (type == 0) {
			if (rd8(e + 3) & 1)
				cpus++;
			e += 20;
		} else if (type <= 4) {
			e += 8;
		} else {
			break;
		}
	}
	return cpus;
}

/* ---- ACPI MADT -------------------------------------------------------- */

static int sig_eq(uint64_t a, const char *s, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (rd8(a + i) != (uint8_t)s[i])
			return 0;
	return 1;
}

static uint64_t rsdp_search(uint64_t start, uint64_t len)
{
	for (uint64_t a = start; a + 20 <= start + len; a += 16)
		if (sig_eq(a, "RSD PTR ", 8) && checksum_ok(a, 20))
			return a;
	return 0;
}

/* A table header address is usable when below 4 GiB (identity-mapped). */
static int table_ok(uint64_t t, uint32_t min_len)
{
	if (t == 0 || t >= 4 * GIB - 64)
		return 0;
	uint32_t len = rd32(t + 4);
	return len >= min_len && t + len <= 4 * GIB && len < (1u << 20) && checksum_ok(t, len);
}

static uint64_t acpi_rsdp; /* validated RSDP, 0 when there is no ACPI */

static void acpi_init(uint64_t rsdp, int search)
{
	if (!rsdp || rsdp >= 4 * GIB || !sig_eq(rsdp, "RSD PTR ", 8) || !checksum_ok(rsdp, 20)) {
		rsdp = 0;
		if (!search)
			return;
		uint64_t ebda = (uint64_t)rd16(0x40e) << 4;
		if (ebda >= 0x80000 && ebda < 0xa0000)
			rsdp = rsdp_search(ebda, 1024);
		if (!rsdp)
			rsdp = rsdp_search(0xe0000, 0x20000);
	}
	acpi_rsdp = rsdp;
}

/* Address of the ACPI table with this signature (below 4 GiB), or 0. */
static uint64_t acpi_table(const char *sig)
{
	if (!acpi_rsdp)
		return 0;
	uint64_t sdt = rd32(acpi_rsdp + 16);
	uint32_t esz = 4;
	if (rd8(acpi_rsdp + 15) >= 2 && rd64(acpi_rsdp + 24) && rd64(acpi_rsdp + 24) < 4 * GIB - 64) {
		sdt = rd64(acpi_rsdp + 24);
		esz = 8;
	}
	if (!table_ok(sdt, 36))
		return 0;
	uint32_t n = (rd32(sdt + 4) - 36) / esz;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t t = esz == 8 ? rd64(sdt + 36 + 8ull * i) : rd32(sdt + 36 + 4ull * i);
		if (table_ok(t, 36) && sig_eq(t, sig, 4))
			return t;
	}
	return 0;
}

/* Enabled local APIC / x2APIC entries of the ACPI MADT; 0 without one. */
static uint32_t madt_cpus(void)
{
	uint64_t t = acpi_table("APIC");
	if (!t || rd32(t + 4) < 44)
		return 0;
	uint32_t cpus = 0;
	uint64_t e = t + 44, end = t + rd32(t + 4);
	while (e + 2 <= end) {
		uint8_t type = rd8(e), len = rd8(e + 1);
		if (len < 2 || e + len > end)
			break;
		if (type == 0 && len >= 8 && (rd32(e + 4) & 1))
			cpus++;
		else if (type == 9 && len >= 16 && (rd32(e + 8) & 1))
			cpus++;
		e += len;
	}
	return cpus;
}

/* Write val to an ACPI generic address (system memory or I/O space). */
static void acpi_gas_write8(uint64_t gas, uint8_t val)
{
	uint8_t space = rd8(gas);
	uint64_t addr = rd64(gas + 4);
	if (!addr)
		return;
	if (space == 1 && addr < 0x10000)
		outb((uint16_t)addr, val);
	else if (space == 0 && addr < 4 * GIB)
		wr8(addr, val);
}

/* Fallback reset: the FADT RESET_REG (QEMU microvm has no i8042 reset). */
static void acpi_reset(void)
{
	uint64_t f = acpi_table("FACP");
	if (f && rd32(f + 4) >= 129)
		acpi_gas_write8(f + 116, rd8(f + 128));
}

/*
 * Fallback power-off for HW-reduced ACPI machines (QEMU microvm): write
 * SLP_TYP=5 | SLP_EN to the FADT's SLEEP_CONTROL_REG.
 */
static void acpi_sleep_ctl_poweroff(void)
{
	uint64_t f = acpi_table("FACP");
	if (f && rd32(f + 4) >= 256)
		acpi_gas_write8(f + 244, 0x34);
}

/* ---- cmdline ----------------------------------------------------------- */

enum exit_mode { EXIT_RESET, EXIT_POWEROFF, EXIT_HALT, EXIT_TRIPLE };
static const char *const exit_names[] = { "reset", "poweroff", "halt", "triple" };

struct opts {
	enum exit_mode exit;
	int garbage, touch, ticker;
	int blk, net, blkbench; /* blkbench: 0 off, 1 seq, 2 rand */
	int hostile;
	uint64_t blkbench_mib;
};

static int word_eq(const char *a, uint32_t n, const char *b)
{
	uint32_t i = 0;
	for (; i < n && b[i]; i++)
		if (a[i] != b[i])
			return 0;
	return i == n && b[i] == 0;
}

static void put_word(const char *s, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		putc_serial(s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?');
}

static void parse_cmdline(const char *s, struct opts *o)
{
	uint32_t i = 0;
	while (i < CMDLINE_MAX && s[i]) {
		while (i < CMDLINE_MAX && s[i] == ' ')
			i++;
		uint32_t k = i;
		while (i < CMDLINE_MAX && s[i] && s[i] != ' ' && s[i] != '=')
			i++;
		uint32_t klen = i - k, v = i, vlen = 0;
		if (i < CMDLINE_MAX && s[i] == '=') {
			v = ++i;
			while (i < CMDLINE_MAX && s[i] && s[i] != ' ')
				i++;
			vlen = i - v;
		}
		if (!klen)
			continue;
		const char *key = s + k, *val = s + v;
		int on = word_eq(val, vlen, "1");
		int known = 1;
		if (word_eq(key, klen, "exit")) {
			known = 0;
			for (int m = 0; m < 4; m++)
				if (word_eq(val, vlen, exit_names[m])) {
					o->exit = (enum exit_mode)m;
					known = 1;
				}
		} else if (word_eq(key, klen, "garbage")) {
			o->garbage = on;
		} else if (word_eq(key, klen, "touch")) {
			o->touch = on;
		} else if (word_eq(key, klen, "ticker")) {
			o->ticker = on;
		} else if (word_eq(key, klen, "blk")) {
			o->blk = on;
		} else if (word_eq(key, klen, "net")) {
			o->net = on;
		} else if (word_eq(key, klen, "virtio_hostile")) {
			o->hostile = on;
		} else if (word_eq(key, klen, "blkbench")) {
			o->blkbench = word_eq(val, vlen, "seq") ? 1 : word_eq(val, vlen, "rand") ? 2 : 0;
			known = o->blkbench != 0;
		} else if (word_eq(key, klen, "blkbench_mib")) {
			uint64_t m = 0;
			for (uint32_t d = 0; d < vlen && d < 8; d++) {
				if (val[d] < '0' || val[d] > '9') {
					m = 0;
					break;
				}
				m = m * 10 + (uint64_t)(val[d] - '0');
			}
			known = m > 0;
			if (m)
				o->blkbench_mib = m;
		} else {
			known = 0;
		}
		if (!known) {
			puts_serial("novakvm-test-guest: ignored cmdline word '");
			put_word(key, klen > 64 ? 64 : klen);
			if (vlen) {
				putc_serial('=');
				put_word(val, vlen > 64 ? 64 : vlen);
			}
			puts_serial("'\n");
		}
	}
}

/* ---- actions ----------------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t junk(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Ports whose junk would reset/power off the VM, stop our console or start DMA. */
static int port_denied(uint32_t p)
{
	return (p >= 0x60 && p <= 0x64) || p == 0x92 || p == 0xb2 || p == 0xb3 ||
	       (p >= 0x3f8 && p <= 0x3ff) || (p >= 0x510 && p <= 0x51b) ||
	       (p >= 0x600 && p <= 0x6ff) || (p >= 0xa00 && p <= 0xa1f) ||
	       (p >= 0xcd8 && p <= 0xcff) || (p >= 0xae00 && p <= 0xaf1f) ||
	       (p >= 0xb000 && p <= 0xb0ff) || (p >= 0x8900 && p <= 0x8903) || p >= 0xc000;
}

static void garbage_mmio(uint64_t a, uint32_t *n)
{
	uint64_t j = junk();
	wr32(a, (uint32_t)j);
	(void)rd32(a);
	wr64(a + 8, j);
	(void)rd64(a + 8);
	wr8(a + 0x41, (uint8_t)j);
	(void)rd8(a + 0x41);
	*n += 1;
}

static void garbage(uint64_t ram_top)
{
	static const uint16_t known[] = { 0x20, 0x21, 0x40, 0x41, 0x42, 0x43, 0x70, 0x71, 0x80,
					  0xa0, 0xa1, 0xf0, 0x2f8, 0x2fb, 0x2e8, 0x3e8, 0x3c0,
					  0x3d4, 0x3d5, 0x1ce, 0x1cf, 0x402, 0x4d0, 0x505, 0x5658 };
	uint32_t ports = 0, mmio = 0;
	for (uint32_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		uint16_t p = known[i];
		outb(p, (uint8_t)junk());
		(void)inb(p);
		ports++;
	}
	for (uint32_t p = 0; p < 0x10000; p += 13) {
		if (port_denied(p))
			continue;
		outb((uint16_t)p, (uint8_t)junk());
		(void)inb((uint16_t)p);
		if (!(p & 3) && !port_denied(p + 3)) {
			outl((uint16_t)p, (uint32_t)junk());
			(void)inl((uint16_t)p);
		}
		ports++;
	}
	/* 3-4 GiB hole, every 16 MiB, skipping PCIe MMCONFIG, IOAPIC/HPET/chipset/LAPIC. */
	for (uint64_t a = 0xc0000000ull; a < 4 * GIB; a += 16 * MIB) {
		if (a >= 0xfe000000ull && a < 0xff000000ull)
			continue;
		garbage_mmio(a + 0x1000, &mmio);
	}
	/* Well beyond RAM: the GiB after the next GiB boundary, and 64 GiB. */
	uint64_t far[2] = { ((ram_top + GIB - 1) / GIB + 1) * GIB, 64 * GIB };
	if (far[0] < 4 * GIB)
		far[0] = 5 * GIB;
	for (int f = 0; f < 2; f++) {
		if (f == 1 && far[1] <= far[0])
			continue;
		if (!map_gib(far[f]))
			continue;
		for (uint64_t off = 0; off < 64 * PAGE; off += PAGE)
			garbage_mmio(far[f] + off, &mmio);
	}
	puts_serial("novakvm-test-guest: garbage ports=");
	put_dec(ports);
	puts_serial(" mmio=");
	put_dec(mmio);
	puts_serial("\n");
}

static void touch(uint64_t floor)
{
	uint64_t pages = 0, bad = 0, bad_at = 0;
	for (int pass = 0; pass < 2 && !bad; pass++) {
		for (uint32_t i = 0; i < memmap_n && !bad; i++) {
			if (memmap[i].type != 1)
				continue;
			uint64_t a = (memmap[i].addr + PAGE - 1) & ~(PAGE - 1);
			uint64_t end = (memmap[i].addr + memmap[i].size) & ~(PAGE - 1);
			if (a < floor)
				a = floor;
			for (; a < end; a += PAGE) {
				uint64_t pat = a ^ 0xa5a5a5a55a5a5a5aull;
				if (pass == 0) {
					wr64(a, pat);
					wr64(a + PAGE - 8, ~pat);
					pages++;
				} else if (rd64(a) != pat || rd64(a + PAGE - 8) != ~pat) {
					bad = 1;
					bad_at = a;
					break;
				}
			}
		}
	}
	if (bad) {
		puts_serial("mem_bad at=");
		put_hex(bad_at);
	} else {
		puts_serial("mem_ok pages=");
		put_dec(pages);
	}
	puts_serial("\n");
}

static uint64_t tsc_mhz(void)
{
	uint32_t r[4];
	cpuid(0, 0, r);
	uint32_t max = r[0];
	if (max >= 0x16) {
		cpuid(0x16, 0, r);
		if (r[0] & 0xffff)
			return r[0] & 0xffff;
	}
	if (max >= 0x15) {
		cpuid(0x15, 0, r);
		if (r[0] && r[1] && r[2])
			return (uint64_t)r[2] * r[1] / r[0] / 1000000;
	}
	return 2000;
}

static __attribute__((noreturn)) void ticker(void)
{
	uint64_t mhz = tsc_mhz();
	puts_serial("novakvm-test-guest: ticker tsc_mhz=");
	put_dec(mhz);
	puts_serial("\n");
	uint64_t period = mhz * 100000; /* 100 ms of TSC ticks */
	for (uint64_t n = 0;; n++) {
		uint64_t t0 = rdtsc();
		puts_serial("tick ");
		put_dec(n);
		puts_serial("\n");
		while (rdtsc() - t0 < period)
			__asm__ volatile("pause");
	}
}

#include "virtio.c"

static __attribute__((noreturn)) void do_exit(enum exit_mode m)
{
	puts_serial("novakvm-test-guest: exit=");
	puts_serial(exit_names[m]);
	puts_serial("\n");
	switch (m) {
	case EXIT_POWEROFF:
		outw(0x604, 0x2000);
		acpi_sleep_ctl_poweroff();
		break;
	case EXIT_HALT:
		break;
	case EXIT_TRIPLE: {
		struct __attribute__((packed)) { uint16_t limit; uint64_t base; } idt = { 0, 0 };
		/* ud2, not int3: kvm_pvm's emulator fails on int3 with a null IDT. */
		__asm__ volatile("lidt %0; ud2" : : "m"(idt));
		break;
	}
	case EXIT_RESET:
	default:
		outb(0x64, 0xfe);
		acpi_reset();
		break;
	}
	halt_forever();
}

void guest_main(uint32_t start_info_paddr)
{
	serial_init();

	uint32_t r[4];
	cpuid(0x80000000u, 0, r);
	uint32_t phys_bits = 36;
	if (r[0] >= 0x80000008u) {
		cpuid(0x80000008u, 0, r);
		phys_bits = r[0] & 0xff;
	}
	phys_limit = phys_bits >= 39 ? 512 * GIB : 1ull << phys_bits;
	pool_next = ((uint64_t)(uintptr_t)_end + PAGE - 1) & ~(PAGE - 1);

	const struct hvm_start_info *si = (const void *)(uintptr_t)start_info_paddr;
	const char *cmdline = "";
	int si_ok = start_info_paddr != 0 && si->magic == START_INFO_MAGIC;
	if (si_ok) {
		if (si->version >= 1 && si->memmap_paddr && si->memmap_entries &&
		    si->memmap_paddr < 4 * GIB) {
			memmap = (const void *)(uintptr_t)si->memmap_paddr;
			memmap_n = si->memmap_entries > 1024 ? 1024 : si->memmap_entries;
		}
		if (si->cmdline_paddr && si->cmdline_paddr < 4 * GIB)
			cmdline = (const char *)(uintptr_t)si->cmdline_paddr;
	}

	uint64_t top;
	uint64_t ram = ram_bytes(&top);
	uint32_t mp = mp_cpus();
	/* Scan for an RSDP only without an MP table: the scan touches 128 KiB. */
	acpi_init(si_ok ? si->rsdp_paddr : 0, mp == 0);
	uint32_t madt = madt_cpus();
	uint32_t cpus = mp > madt ? mp : madt;

	puts_serial("novakvm-test-guest: mem_mib=");
	put_dec((ram + MIB - 1) / MIB);
	puts_serial(" vcpus=");
	put_dec(cpus ? cpus : 1);
	puts_serial("\n");

	/* Informational line: how the counts were found. */
	cpuid(0, 0, r);
	uint32_t max_leaf = r[0], l0b = 0, l01;
	cpuid(1, 0, r);
	l01 = (r[1] >> 16) & 0xff;
	uint32_t apic_id = r[1] >> 24;
	if (max_leaf >= 0xb) {
		cpuid(0xb, 1, r);
		l0b = r[1] & 0xffff;
	}
	puts_serial("novakvm-test-guest: info start_info=");
	puts_serial(!si_ok ? "bad" : memmap ? "v1-memmap" : "no-memmap");
	puts_serial(" mp_cpus=");
	put_dec(mp);
	puts_serial(" madt_cpus=");
	put_dec(madt);
	puts_serial(" cpuid_0b_logical=");
	put_dec(l0b);
	puts_serial(" cpuid_01_logical=");
	put_dec(l01);
	puts_serial(" apic_id=");
	put_dec(apic_id);
	puts_serial(" phys_bits=");
	put_dec(phys_bits);
	puts_serial("\n");

	/* Map RAM above 4 GiB. */
	for (uint64_t a = 4 * GIB; a < top; a += GIB)
		if (!map_gib(a))
			break;

	struct opts o = { EXIT_RESET, 0, 0, 0, 0, 0, 0, 0, 64 };
	parse_cmdline(cmdline, &o);
	if (o.garbage)
		garbage(top);
	if (o.touch) {
		if (memmap)
			touch(pool_next);
		else
			puts_serial("mem_bad at=0x0 (no memmap)\n");
	}
	if (o.blk || o.net || o.blkbench || o.hostile)
		pci_scan();
	if (o.hostile)
		virtio_hostile();
	if (o.blk)
		blk_test();
	if (o.net)
		net_test();
	if (o.blkbench)
		blkbench(o.blkbench == 2, o.blkbench_mib);
	if (o.ticker)
		ticker();
	do_exit(o.exit);
}
