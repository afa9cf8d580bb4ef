/*
 * novakvm test guest: minimal virtio 1.x (modern virtio-pci) drivers, polled.
 * Included by main.c (one translation unit).  PCI config through 0xCF8/0xCFC,
 * bus 0 only; one queue of 8 entries per direction, no interrupts.
 */

#define VQ_SIZE 8
#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2

struct vring_desc { uint64_t addr; uint32_t len; uint16_t flags; uint16_t next; };

struct vq {
	uint16_t size, last_used;
	volatile struct vring_desc *desc;
	volatile uint16_t *avail; /* flags, idx, ring[size] */
	volatile uint32_t *used;  /* flags|idx, then (id, len) pairs */
	uint64_t notify;
	uint16_t index;
};

struct vdev {
	uint32_t slot;
	uint32_t type;
	uint64_t common, isr, devcfg, notify;
	uint32_t notify_mult;
	uint64_t features;
	struct vq q[2];
};

#define MAX_VDEVS 8
static struct vdev vdevs[MAX_VDEVS];
static uint32_t nvdevs;
/* One page per queue: descriptors at 0, available ring at 512, used ring at 1024. */
static uint8_t vq_pages[MAX_VDEVS * 2][4096] __attribute__((aligned(4096)));
static uint32_t vq_pages_used;

static inline void mb(void) { __asm__ volatile("mfence" ::: "memory"); }
static inline uint16_t rd16v(uint64_t a) { return *(volatile uint16_t *)(uintptr_t)a; }
static inline void wr16(uint64_t a, uint16_t v) { *(volatile uint16_t *)(uintptr_t)a = v; }

static uint32_t pci_read(uint32_t dev, uint32_t reg)
{
	outl(0xcf8, 0x80000000u | (dev << 11) | (reg & 0xfc));
	return inl(0xcfc);
}

static void pci_write(uint32_t dev, uint32_t reg, uint32_t v)
{
	outl(0xcf8, 0x80000000u | (dev << 11) | (reg & 0xfc));
	outl(0xcfc, v);
}

/* Common configuration offsets. */
#define CC_DFSEL 0x00
#define CC_DF 0x04
#define CC_GFSEL 0x08
#define CC_GF 0x0c
#define CC_NUMQ 0x12
#define CC_STATUS 0x14
#define CC_QSEL 0x16
#define CC_QSIZE 0x18
#define CC_QENABLE 0x1c
#define CC_QNOTIFY 0x1e
#define CC_QDESC 0x20
#define CC_QAVAIL 0x28
#define CC_QUSED 0x30

/*
 * Address of memory BAR `bi` of device `d`.  A VMM that leaves a BAR unassigned (QEMU
 * q35 + SeaBIOS's PVH boot leaves the 64-bit virtio BAR at 0) gets one in
 * 0xE0000000..0xFE000000, naturally aligned, like firmware would.  0 = unusable.
 */
static uint64_t bar_next = 0xe0000000ull;
static uint64_t pci_bar(uint32_t d, uint32_t bi)
{
	if (bi > 5)
		return 0;
	uint32_t reg = 0x10 + 4 * bi, lo = pci_read(d, reg);
	if (lo & 1)
		return 0;
	int is64 = (lo & 6) == 4 && bi < 5;
	uint64_t bar = lo & ~0xfu;
	if (is64)
		bar |= (uint64_t)pci_read(d, reg + 4) << 32;
	if (bar)
		return bar >= 4 * GIB && !map_gib(bar) ? 0 : bar;
	pci_write(d, reg, 0xffffffffu);
	uint32_t mask = pci_read(d, reg) & ~0xfu;
	uint64_t size = mask ? (uint64_t)(~mask) + 1 : 0;
	if (!size || size > 0x10000000ull)
		return 0;
	bar_next = (bar_next + size - 1) & ~(size - 1);
	if (bar_next + size > 0xfe000000ull) {
		pci_write(d, reg, 0);
		return 0;
	}
	pci_write(d, reg, (uint32_t)bar_next);
	if (is64)
		pci_write(d, reg + 4, 0);
	bar = bar_next;
	bar_next += size;
	return bar;
}

static void pci_scan(void)
{
	for (uint32_t d = 0; d < 32 && nvdevs < MAX_VDEVS; d++) {
		uint32_t id = pci_read(d, 0);
		if ((id & 0xffff) != 0x1af4)
			continue;
		uint32_t did = id >> 16;
		if (did < 0x1040 || did > 0x107f)
			continue;
		struct vdev *v = &vdevs[nvdevs];
		memset(v, 0, sizeof(*v));
		v->slot = d;
		v->type = did - 0x1040;
		uint32_t p = pci_read(d, 0x34) & 0xfc;
		int ok = 1;
		uint64_t badbar = 0;
		for (int n = 0; p && n < 48; n++) {
			uint32_t w0 = pci_read(d, p);
			uint32_t bi = pci_read(d, p + 4) & 0xff;
			uint32_t kind = w0 >> 24;
			if ((w0 & 0xff) == 0x09 && kind >= 1 && kind <= 4) {
				uint64_t bar = pci_bar(d, bi);
				if (!bar) {
					ok = 0;
					badbar = pci_read(d, 0x10 + 4 * bi);
				}
				uint64_t a = bar + pci_read(d, p + 8);
				switch (kind) {
				case 1: v->common = a; break;
				case 2: v->notify = a; v->notify_mult = pci_read(d, p + 16); break;
				case 3: v->isr = a; break;
				case 4: v->devcfg = a; break;
				}
			}
			p = (w0 >> 8) & 0xfc;
		}
		pci_write(d, 0x04, pci_read(d, 0x04) | 0x6); /* memory + bus master */
		if (ok && v->common && v->notify && v->isr) {
			nvdevs++;
		} else {
			puts_serial("novakvm-test-guest: pci ");
			put_dec(d);
			puts_serial(" virtio type ");
			put_dec(v->type);
			puts_serial(" unusable: BAR ");
			put_hex(badbar);
			puts_serial(" (I/O, unassigned or beyond the mappable range) or capabilities missing\n");
		}
	}
}

static void put_name(const char *kind, uint32_t n)
{
	puts_serial("novakvm-test-guest: ");
	puts_serial(kind);
	put_dec(n);
	puts_serial(" ");
}

/* Reset, negotiate VERSION_1 plus `want` (low 32 bits), set up `nq` queues. */
static int vdev_init(struct vdev *v, uint32_t want, int nq)
{
	uint64_t c = v->common;
	wr8(c + CC_STATUS, 0);
	for (int i = 0; i < 1000 && rd8(c + CC_STATUS); i++)
		__asm__ volatile("pause");
	wr8(c + CC_STATUS, 1);
	wr8(c + CC_STATUS, 1 | 2);
	wr32(c + CC_DFSEL, 0);
	uint64_t f = rd32(c + CC_DF);
	wr32(c + CC_DFSEL, 1);
	f |= (uint64_t)rd32(c + CC_DF) << 32;
	v->features = f;
	if (!(f & (1ull << 32)))
		return -1;
	wr32(c + CC_GFSEL, 0);
	wr32(c + CC_GF, (uint32_t)f & want);
	wr32(c + CC_GFSEL, 1);
	wr32(c + CC_GF, 1);
	wr8(c + CC_STATUS, 1 | 2 | 8);
	if (!(rd8(c + CC_STATUS) & 8))
		return -2;
	if (rd16v(c + CC_NUMQ) < nq)
		return -3;
	for (int q = 0; q < nq; q++) {
		if (vq_pages_used >= MAX_VDEVS * 2)
			return -4;
		uint8_t *page = vq_pages[vq_pages_used++];
		memset(page, 0, 4096);
		struct vq *vq = &v->q[q];
		wr16(c + CC_QSEL, q);
		uint16_t max = rd16v(c + CC_QSIZE);
		if (max < VQ_SIZE)
			return -5;
		vq->size = VQ_SIZE;
		vq->index = q;
		vq->last_used = 0;
		vq->desc = (volatile struct vring_desc *)page;
		vq->avail = (volatile uint16_t *)(page + 512);
		vq->used = (volatile uint32_t *)(page + 1024);
		wr16(c + CC_QSIZE, VQ_SIZE);
		wr32(c + CC_QDESC, (uint32_t)(uintptr_t)vq->desc);
		wr32(c + CC_QDESC + 4, 0);
		wr32(c + CC_QAVAIL, (uint32_t)(uintptr_t)vq->avail);
		wr32(c + CC_QAVAIL + 4, 0);
		wr32(c + CC_QUSED, (uint32_t)(uintptr_t)vq->used);
		wr32(c + CC_QUSED + 4, 0);
		vq->notify = v->notify + (uint64_t)rd16v(c + CC_QNOTIFY) * v->notify_mult;
		wr16(c + CC_QENABLE, 1);
	}
	wr8(c + CC_STATUS, 1 | 2 | 8 | 4);
	if (rd8(c + CC_STATUS) & 0x40)
		return -6;
	return 0;
}

/* Put descriptor chain `head` in the available ring and notify. */
static void vq_submit(struct vq *q, uint16_t head)
{
	uint16_t idx = q->avail[1];
	q->avail[2 + idx % q->size] = head;
	mb();
	q->avail[1] = idx + 1;
	mb();
	wr16(q->notify, q->index);
}

/* Wait (bounded by `us` microseconds) for a used element; returns its id or -1. */
static int vq_wait(struct vq *q, uint64_t us, uint32_t *len)
{
	static uint64_t mhz;
	if (!mhz)
		mhz = tsc_mhz();
	uint64_t t0 = rdtsc(), limit = us * mhz;
	while ((uint16_t)(q->used[0] >> 16) == q->last_used) {
		if (rdtsc() - t0 > limit)
			return -1;
		__asm__ volatile("pause");
	}
	mb();
	uint32_t slot = q->last_used % q->size;
	uint32_t id = q->used[1 + 2 * slot];
	if (len)
		*len = q->used[2 + 2 * slot];
	q->last_used++;
	return (int)id;
}

/* ---- virtio-blk -------------------------------------------------------- */

struct blk_hdr { uint32_t type, reserved; uint64_t sector; };
static struct blk_hdr blk_req;
static volatile uint8_t blk_status;
static uint8_t blk_buf[4096] __attribute__((aligned(4096)));

/* One synchronous request; returns the status byte, or 0xff on timeout. */
static int blk_rw(struct vdev *v, uint32_t type, uint64_t sector, void *buf, uint32_t len)
{
	struct vq *q = &v->q[0];
	blk_req.type = type;
	blk_req.reserved = 0;
	blk_req.sector = sector;
	blk_status = 0xee;
	q->desc[0].addr = (uint64_t)(uintptr_t)&blk_req;
	q->desc[0].len = sizeof(blk_req);
	q->desc[0].flags = VIRTQ_DESC_F_NEXT;
	q->desc[0].next = 1;
	uint16_t d = 1;
	if (len) {
		q->desc[1].addr = (uint64_t)(uintptr_t)buf;
		q->desc[1].len = len;
		q->desc[1].flags = VIRTQ_DESC_F_NEXT | (type == 1 ? 0 : VIRTQ_DESC_F_WRITE);
		q->desc[1].next = 2;
		d = 2;
	}
	q->desc[d].addr = (uint64_t)(uintptr_t)&blk_status;
	q->desc[d].len = 1;
	q->desc[d].flags = VIRTQ_DESC_F_WRITE;
	q->desc[d].next = 0;
	vq_submit(q, 0);
	if (vq_wait(q, 5000000, 0) < 0)
		return 0xff;
	return blk_status;
}

static void put_status(const char *what, int st)
{
	puts_serial(what);
	put_dec((uint64_t)st);
	puts_serial("\n");
}

static void blk_test(void)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < nvdevs; i++) {
		struct vdev *v = &vdevs[i];
		if (v->type != 2)
			continue;
		int e = vdev_init(v, (1u << 5) | (1u << 9), 1);
		if (e) {
			put_name("blk", n++);
			put_status("init error=", -e);
			continue;
		}
		uint64_t cap = rd32(v->devcfg) | (uint64_t)rd32(v->devcfg + 4) << 32;
		int ro = (v->features >> 5) & 1;
		put_name("blk", n);
		puts_serial("capacity=");
		put_dec(cap);
		puts_serial(" ro=");
		put_dec((uint64_t)ro);
		puts_serial("\n");

		memset(blk_buf, 0, 512);
		int st = blk_rw(v, 8, 0, blk_buf, 20);
		put_name("blk", n);
		if (st) {
			put_status("id error status=", st);
		} else {
			puts_serial("id=");
			for (int k = 0; k < 20 && blk_buf[k]; k++)
				putc_serial(blk_buf[k] >= 0x20 && blk_buf[k] < 0x7f ? blk_buf[k] : '?');
			puts_serial("\n");
		}

		st = blk_rw(v, 0, 0, blk_buf, 512);
		put_name("blk", n);
		if (st) {
			put_status("read error status=", st);
		} else {
			puts_serial("read sector0=");
			for (int k = 0; k < 16; k++) {
				putc_serial("0123456789abcdef"[blk_buf[k] >> 4]);
				putc_serial("0123456789abcdef"[blk_buf[k] & 15]);
			}
			puts_serial("\n");
		}

		static const char pat[] = "novakvm sector 1 ";
		for (int k = 0; k < 512; k++)
			blk_buf[k] = (uint8_t)pat[k % (sizeof(pat) - 1)];
		st = blk_rw(v, 1, 1, blk_buf, 512);
		put_name("blk", n);
		if (st)
			put_status("write error status=", st);
		else
			puts_serial("wrote sector1\n");
		if (!st && (v->features & (1u << 9)))
			blk_rw(v, 4, 0, 0, 0);

		/* Past the end: must fail. */
		st = blk_rw(v, 0, cap, blk_buf, 512);
		put_name("blk", n);
		put_status("read past end status=", st);
		n++;
	}
	if (!n)
		puts_serial("novakvm-test-guest: no virtio-blk device\n");
}

static void blkbench(int rand, uint64_t mib)
{
	struct vdev *v = 0;
	for (uint32_t i = 0; i < nvdevs && !v; i++)
		if (vdevs[i].type == 2)
			v = &vdevs[i];
	if (!v || vdev_init(v, 0, 1)) {
		puts_serial("novakvm-test-guest: blkbench no disk\n");
		return;
	}
	uint64_t cap = rd32(v->devcfg) | (uint64_t)rd32(v->devcfg + 4) << 32;
	uint64_t blocks = cap / 8, n = mib * 256, errors = 0, x = 0x2545f4914f6cdd1dull;
	if (!blocks) {
		puts_serial("novakvm-test-guest: blkbench disk too small\n");
		return;
	}
	puts_serial("novakvm-test-guest: blkbench start\n");
	uint64_t t0 = rdtsc();
	for (uint64_t i = 0; i < n; i++) {
		uint64_t b;
		if (rand) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			b = x % blocks;
		} else {
			b = i % blocks;
		}
		if (blk_rw(v, 0, b * 8, blk_buf, 4096))
			errors++;
	}
	uint64_t cycles = rdtsc() - t0, mhz = tsc_mhz();
	puts_serial("novakvm-test-guest: blkbench mode=");
	puts_serial(rand ? "rand" : "seq");
	puts_serial(" bytes=");
	put_dec(n * 4096);
	puts_serial(" errors=");
	put_dec(errors);
	puts_serial(" tsc_cycles=");
	put_dec(cycles);
	puts_serial(" tsc_mhz=");
	put_dec(mhz);
	puts_serial(" us=");
	put_dec(cycles / (mhz ? mhz : 1));
	puts_serial("\n");
}

/* ---- virtio-net -------------------------------------------------------- */

#define NET_HDR 12
#define NET_RXBUF 2048
static uint8_t net_rx[4][NET_RXBUF] __attribute__((aligned(64)));
static uint8_t net_tx[NET_HDR + 64] __attribute__((aligned(64)));

static void net_post_rx(struct vq *q, uint16_t id)
{
	q->desc[id].addr = (uint64_t)(uintptr_t)net_rx[id];
	q->desc[id].len = NET_RXBUF;
	q->desc[id].flags = VIRTQ_DESC_F_WRITE;
	q->desc[id].next = 0;
	vq_submit(q, id);
}

static void net_test(void)
{
	struct vdev *v = 0;
	for (uint32_t i = 0; i < nvdevs && !v; i++)
		if (vdevs[i].type == 1)
			v = &vdevs[i];
	if (!v) {
		puts_serial("novakvm-test-guest: no virtio-net device\n");
		return;
	}
	int e = vdev_init(v, 1u << 5, 2);
	if (e) {
		put_name("net", 0);
		put_status("init error=", -e);
		return;
	}
	uint8_t mac[6];
	for (int k = 0; k < 6; k++)
		mac[k] = rd8(v->devcfg + k);
	put_name("net", 0);
	puts_serial("mac=");
	for (int k = 0; k < 6; k++) {
		putc_serial("0123456789abcdef"[mac[k] >> 4]);
		putc_serial("0123456789abcdef"[mac[k] & 15]);
		if (k < 5)
			putc_serial(':');
	}
	puts_serial("\n");
	struct vq *rx = &v->q[0], *tx = &v->q[1];
	for (uint16_t id = 0; id < 4; id++)
		net_post_rx(rx, id);

	static const char marker[] = "novakvm-guest-ping";
	uint8_t *f = net_tx + NET_HDR;
	memset(net_tx, 0, sizeof(net_tx));
	memset(f, 0xff, 6);
	memcpy(f + 6, mac, 6);
	f[12] = 0x88;
	f[13] = 0xb5;
	memcpy(f + 14, marker, sizeof(marker));
	tx->desc[0].addr = (uint64_t)(uintptr_t)net_tx;
	tx->desc[0].len = NET_HDR + 60;
	tx->desc[0].flags = 0;
	tx->desc[0].next = 0;
	vq_submit(tx, 0);
	put_name("net", 0);
	puts_serial(vq_wait(tx, 2000000, 0) < 0 ? "send timeout\n" : "sent\n");

	/* Wait up to 10 s for a frame of type 0x88b5; repost anything else. */
	for (int tries = 0; tries < 64; tries++) {
		uint32_t len = 0;
		int id = vq_wait(rx, 10000000, &len);
		if (id < 0 || id >= 4) {
			put_name("net", 0);
			puts_serial("receive timeout\n");
			return;
		}
		uint8_t *p = net_rx[id] + NET_HDR;
		if (len >= NET_HDR + 14 && p[12] == 0x88 && p[13] == 0xb5) {
			put_name("net", 0);
			puts_serial("received len=");
			put_dec(len - NET_HDR);
			puts_serial(" payload=");
			for (uint32_t k = 14; k < 14 + 32 && k < len - NET_HDR; k++) {
				if (p[k] < 0x21 || p[k] > 0x7e)
					break;
				putc_serial(p[k]);
			}
			puts_serial("\n");
			return;
		}
		net_post_rx(rx, (uint16_t)id);
	}
	put_name("net", 0);
	puts_serial("receive gave up\n");
}

/* ---- hostile driver (virtio_hostile=1) ----------------------------------
 * Breaks the protocol on disk 0 in several ways and reports whether the device
 * refused (FEATURES_OK withheld) or failed itself (DEVICE_NEEDS_RESET), then
 * checks that a reset brings it back.
 */

static int wait_needs_reset(struct vdev *v)
{
	uint64_t mhz = tsc_mhz(), t0 = rdtsc();
	while (rdtsc() - t0 < 2000000 * mhz) {
		if (rd8(v->common + CC_STATUS) & 0x40)
			return 1;
		__asm__ volatile("pause");
	}
	return 0;
}

static void hostile_line(const char *what, int v)
{
	puts_serial("novakvm-test-guest: hostile ");
	puts_serial(what);
	put_dec((uint64_t)v);
	puts_serial("\n");
}

static void virtio_hostile(void)
{
	struct vdev *v = 0;
	for (uint32_t i = 0; i < nvdevs && !v; i++)
		if (vdevs[i].type == 2)
			v = &vdevs[i];
	if (!v) {
		puts_serial("novakvm-test-guest: hostile no disk\n");
		return;
	}
	uint64_t c = v->common;
	/* 1. Ack a feature the device did not offer (bit 0) and no VERSION_1. */
	wr8(c + CC_STATUS, 0);
	wr8(c + CC_STATUS, 3);
	wr32(c + CC_GFSEL, 0);
	wr32(c + CC_GF, 1);
	wr32(c + CC_GFSEL, 1);
	wr32(c + CC_GF, 1 | 4);
	wr8(c + CC_STATUS, 3 | 8);
	hostile_line("unoffered_features_ok=", (rd8(c + CC_STATUS) & 8) != 0);

	/* 2. Queue size 3 (not a power of two). */
	wr8(c + CC_STATUS, 0);
	wr8(c + CC_STATUS, 3);
	wr32(c + CC_GFSEL, 0);
	wr32(c + CC_GF, 0);
	wr32(c + CC_GFSEL, 1);
	wr32(c + CC_GF, 1);
	wr8(c + CC_STATUS, 3 | 8);
	wr16(c + CC_QSEL, 0);
	wr16(c + CC_QSIZE, 3);
	wr32(c + CC_QDESC, 0x200000);
	wr32(c + CC_QAVAIL, 0x201000);
	wr32(c + CC_QUSED, 0x202000);
	wr16(c + CC_QENABLE, 1);
	wr8(c + CC_STATUS, 3 | 8 | 4);
	hostile_line("qsize3_needs_reset=", (rd8(c + CC_STATUS) & 0x40) != 0);

	/* 3. A data buffer outside guest memory. */
	vq_pages_used = 0;
	if (vdev_init(v, 0, 1)) {
		puts_serial("novakvm-test-guest: hostile init failed\n");
		return;
	}
	struct vq *q = &v->q[0];
	blk_req.type = 0;
	blk_req.sector = 0;
	q->desc[0].addr = (uint64_t)(uintptr_t)&blk_req;
	q->desc[0].len = 16;
	q->desc[0].flags = VIRTQ_DESC_F_NEXT;
	q->desc[0].next = 1;
	q->desc[1].addr = 0x7f0000000000ull;
	q->desc[1].len = 512;
	q->desc[1].flags = VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE;
	q->desc[1].next = 2;
	q->desc[2].addr = (uint64_t)(uintptr_t)&blk_status;
	q->desc[2].len = 1;
	q->desc[2].flags = VIRTQ_DESC_F_WRITE;
	q->desc[2].next = 0;
	vq_submit(q, 0);
	hostile_line("bad_addr_needs_reset=", wait_needs_reset(v));

	/* 4. Available index jumping far ahead. */
	vq_pages_used = 0;
	if (vdev_init(v, 0, 1))
		return;
	q = &v->q[0];
	q->avail[1] = 200;
	mb();
	wr16(q->notify, 0);
	hostile_line("avail_jump_needs_reset=", wait_needs_reset(v));

	/* 5. A descriptor loop without a status byte: 0 -> 1 -> 0 -> ... */
	vq_pages_used = 0;
	if (vdev_init(v, 0, 1))
		return;
	q = &v->q[0];
	q->desc[0].addr = (uint64_t)(uintptr_t)&blk_req;
	q->desc[0].len = 16;
	q->desc[0].flags = VIRTQ_DESC_F_NEXT;
	q->desc[0].next = 1;
	q->desc[1].addr = (uint64_t)(uintptr_t)blk_buf;
	q->desc[1].len = 512;
	q->desc[1].flags = VIRTQ_DESC_F_NEXT;
	q->desc[1].next = 0;
	vq_submit(q, 0);
	hostile_line("loop_needs_reset=", wait_needs_reset(v));

	/* 6. After a reset the device works again. */
	vq_pages_used = 0;
	if (vdev_init(v, 0, 1))
		return;
	hostile_line("recovered_read_status=", blk_rw(v, 0, 0, blk_buf, 512));
}
