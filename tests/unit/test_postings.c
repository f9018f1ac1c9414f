/*
 * test_postings.c - the posting blocks of the packed index (postings.h)
 * against a plain array of events: appends, walks, finding a byte or a
 * gseq, filtering a task out, the edges of every number, and damaged
 * blocks (every cut and random flips) that must be refused, never read
 * past.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "postings.h"
#include "testutil.h"

struct model {
	struct post_ev ev[POST_BLOCK_EVENTS];
	size_t n;
	unsigned char blk[POST_BLOCK_MAX];
	size_t len;
};

static uint64_t rnd(unsigned *seed, uint64_t n)
{
	uint64_t r = ((uint64_t)rand_r(seed) << 31) ^ (uint64_t)rand_r(seed);

	return n ? r % n : r;
}

/* The block must hold exactly the model's events. */
static void check_block(const struct model *m)
{
	struct post_iter it;
	struct post_hdr h;
	struct post_ev ev;
	uint64_t bytes = 0;
	size_t i = 0;
	int rc;

	assert_int_equal(post_check(m->blk, m->len), 0);
	assert_int_equal(post_header(m->blk, m->len, &h), 0);
	assert_int_equal(h.count, m->n);
	assert_int_equal(post_iter_init(&it, m->blk, m->len), 0);
	while ((rc = post_next(&it, &ev)) > 0) {
		assert_true(i < m->n);
		assert_int_equal(ev.gseq, m->ev[i].gseq);
		assert_int_equal(ev.uid, m->ev[i].uid);
		assert_int_equal(ev.off, m->ev[i].off);
		assert_int_equal(ev.len, m->ev[i].len);
		bytes += ev.len;
		i++;
	}
	assert_int_equal(rc, 0);
	assert_int_equal(i, m->n);
	assert_int_equal(h.bytes, bytes);
}

static void append(struct model *m, const struct post_ev *ev)
{
	long n = post_append(m->blk, m->len, ev, m->blk);	/* in place */

	assert_true(n > 0);
	m->len = (size_t)n;
	m->ev[m->n++] = *ev;
}

/* A list as the applier makes one: tasks writing runs of events, offsets rising per task. */
static void fill_random(struct model *m, unsigned *seed, size_t n, int tasks)
{
	uint64_t end[16] = { 0 }, gseq = 1 + rnd(seed, 1000000);

	m->n = 0;
	m->len = post_init(m->blk);
	for (size_t i = 0; i < n; i++) {
		uint64_t uid = 1 + rnd(seed, (uint64_t)tasks);
		struct post_ev ev;

		gseq += 1 + (rnd(seed, 4) ? 0 : rnd(seed, 5000));
		end[uid] += rnd(seed, 3) ? 0 : rnd(seed, 100000);	/* other types between */
		ev = (struct post_ev){ gseq, uid, end[uid], (uint32_t)(1 + rnd(seed, 400)) };
		end[uid] += ev.len;
		append(m, &ev);
	}
}

static void appends_round_trip(void **state)
{
	unsigned seed = 17;
	struct model m;

	(void)state;
	for (int round = 0; round < 300; round++) {
		size_t n = 1 + rnd(&seed, POST_BLOCK_EVENTS);

		fill_random(&m, &seed, n, 1 + round % 12);
		check_block(&m);
	}
	/* empty */
	m.n = 0;
	m.len = post_init(m.blk);
	check_block(&m);
}

/* The largest numbers each field can carry, and wrap-around deltas between them. */
static void edges_of_every_number(void **state)
{
	static const struct post_ev evs[] = {
		{ 1, UINT64_MAX, UINT64_MAX - UINT32_MAX, UINT32_MAX },
		{ 2, 1, 0, 1 },
		{ 3, 1, UINT64_MAX - 5, 5 },
		{ 4, 1, 0, 1 },		/* behind the previous end of its task */
		{ UINT64_MAX - 1, UINT64_MAX, 7, 1 },
		{ UINT64_MAX, 2, 0, UINT32_MAX },
	};
	struct model m = { .len = 0 };

	(void)state;
	m.len = post_init(m.blk);
	for (size_t i = 0; i < sizeof(evs) / sizeof(*evs); i++) {
		append(&m, &evs[i]);
		check_block(&m);
	}
}

static void full_and_out_of_order(void **state)
{
	unsigned seed = 3;
	unsigned char out[POST_BLOCK_MAX];
	struct model m;
	struct post_ev ev;

	(void)state;
	fill_random(&m, &seed, POST_BLOCK_EVENTS, 4);
	ev = (struct post_ev){ m.ev[m.n - 1].gseq + 1, 1, 0, 10 };
	assert_int_equal(post_append(m.blk, m.len, &ev, out), -ENOSPC);
	fill_random(&m, &seed, 10, 4);
	ev = (struct post_ev){ m.ev[m.n - 1].gseq, 1, 0, 10 };
	assert_int_equal(post_append(m.blk, m.len, &ev, out), -EINVAL);
	ev.gseq--;
	assert_int_equal(post_append(m.blk, m.len, &ev, out), -EINVAL);
	check_block(&m);	/* unchanged */
}

/* Events the applier never makes are refused, and an append into another buffer is the same. */
static void appends_refuse_what_no_event_is(void **state)
{
	struct post_ev bad[] = {
		{ 0, 1, 0, 10 }, { 1, 0, 0, 10 }, { 1, 1, 0, 0 }, { 1, 1, UINT64_MAX - 9, 10 },
	};
	unsigned char out[POST_BLOCK_MAX], big[POST_BLOCK_MAX + 64];
	unsigned seed = 8;
	struct model m;
	struct post_ev ev;
	long n;

	(void)state;
	fill_random(&m, &seed, 20, 3);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		size_t e = post_init(out);

		/* into an empty block, and after the last gseq of a full one */
		assert_int_equal(post_append(out, e, &bad[i], out), -EINVAL);
		if (bad[i].gseq)
			bad[i].gseq = m.ev[m.n - 1].gseq + 1;
		assert_int_equal(post_append(m.blk, m.len, &bad[i], out), -EINVAL);
	}
	ev = (struct post_ev){ m.ev[m.n - 1].gseq + 3, 2, 1u << 30, 77 };
	n = post_append(m.blk, m.len, &ev, out);
	append(&m, &ev);
	assert_int_equal(n, (long)m.len);
	assert_memory_equal(out, m.blk, m.len);
	/* a block longer than any this code writes, under a valid header */
	memset(big, 0, sizeof(big));
	memcpy(big, m.blk, m.len);
	ev.gseq++;
	assert_int_equal(post_append(big, sizeof(big), &ev, out), -EUCLEAN);
}

/* A sparse list (gaps, a task change at every event) fills its block by bytes first. */
static void full_by_bytes(void **state)
{
	unsigned char blk[POST_BLOCK_MAX];
	size_t len = post_init(blk);
	uint64_t gseq = 1;
	int n = 0;
	long r;

	(void)state;
	for (;;) {
		struct post_ev ev = { gseq += 1u << 30, (uint64_t)(n % 2 ? 1 : UINT64_MAX - 7),
				      (uint64_t)1 << 50, UINT32_MAX };

		r = post_append(blk, len, &ev, blk);
		if (r < 0)
			break;
		len = (size_t)r;
		n++;
	}
	assert_int_equal(r, -ENOSPC);
	assert_true(n < POST_BLOCK_EVENTS);
	assert_true(len <= POST_BLOCK_BYTES);
	assert_int_equal(post_check(blk, len), 0);
}

/* ---- hand-made damage: one block per rule, each refused by every reader ---- */

static size_t uv(unsigned char *p, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (unsigned char)v;
	return n;
}

static bool keep_all(void *arg, const struct post_ev *ev)
{
	return false;
}

static void refused_everywhere(const unsigned char *blk, size_t len)
{
	unsigned char out[POST_BLOCK_MAX];
	struct post_iter it;
	struct post_ev ev;
	uint64_t skip;
	uint32_t at;
	int rc = 1;

	assert_int_equal(post_check(blk, len), -EUCLEAN);
	assert_int_equal(post_find_byte(blk, len, 0, &at, &skip), -EUCLEAN);
	assert_int_equal(post_find_gseq(blk, len, 0, &at, &skip), -EUCLEAN);
	assert_int_equal(post_filter(blk, len, keep_all, NULL, out), -EUCLEAN);
	if (!post_iter_init(&it, blk, len)) {
		while ((rc = post_next(&it, &ev)) > 0)
			;
		assert_int_equal(rc, -EUCLEAN);
		assert_int_equal(post_next(&it, &ev), -EUCLEAN);	/* and stays so */
	}
}

/* A block of two events (gseq 10, 11; uid 1; off 0, 100; len 100, 50) built raw, with one change. */
enum damage { D_NONE, D_TRAILING, D_BYTES, D_LAST_GSEQ, D_LAST_UID, D_LAST_END, D_COUNT,
	      D_FIRST_DELTA, D_LATER_DELTA0, D_LEN32, D_LEN0, D_UID0, D_WRAP, D_LONG_VARINT,
	      D_BIT64, D_NONCANONICAL, D_EMPTY_NONZERO, D_ALL };

static size_t craft(unsigned char *b, enum damage d)
{
	size_t n = 0;

	if (d == D_EMPTY_NONZERO) {
		n += uv(b + n, 0);
		n += uv(b + n, 0);
		n += uv(b + n, 7);	/* a first gseq of nothing */
		for (int i = 0; i < 3; i++)
			n += uv(b + n, 0);
		return n;
	}
	if (d == D_COUNT) {
		/* POST_BLOCK_EVENTS + 1 real events of one byte */
		n += uv(b + n, POST_BLOCK_EVENTS + 1);
		n += uv(b + n, POST_BLOCK_EVENTS + 1);
		n += uv(b + n, 10);
		n += uv(b + n, POST_BLOCK_EVENTS);
		n += uv(b + n, 1);
		n += uv(b + n, POST_BLOCK_EVENTS + 1);
		for (int i = 0; i <= POST_BLOCK_EVENTS; i++) {
			n += uv(b + n, i ? 1 : 0);
			n += uv(b + n, i ? 0 : 2);
			n += uv(b + n, 0);
			n += uv(b + n, 1);
		}
		return n;
	}
	n += uv(b + n, 2);
	n += uv(b + n, d == D_BYTES ? 151 : d == D_LEN0 ? 100 : 150);
	n += uv(b + n, 10);
	n += uv(b + n, d == D_LAST_GSEQ ? 2 : d == D_LATER_DELTA0 ? 0 : d == D_FIRST_DELTA ? 2 : 1);
	n += uv(b + n, d == D_LAST_UID ? 2 : 1);
	n += uv(b + n, d == D_LAST_END ? 151 : d == D_WRAP ? 49 : d == D_LEN0 ? 100 : 150);
	/* entry 1: delta, z(uid 1 - 0), off (new task), len */
	n += uv(b + n, d == D_FIRST_DELTA ? 1 : 0);
	n += uv(b + n, d == D_UID0 ? 0 : 2);
	if (d == D_NONCANONICAL) {
		b[n++] = 0x80;		/* 0, in two bytes */
		b[n++] = 0x00;
	} else if (d == D_WRAP) {
		n += uv(b + n, UINT64_MAX - 50);
	} else {
		n += uv(b + n, 0);
	}
	n += uv(b + n, 100);
	/* entry 2: same task, right after */
	n += uv(b + n, d == D_LATER_DELTA0 ? 0 : 1);
	n += uv(b + n, 0);
	n += uv(b + n, 0);
	if (d == D_LONG_VARINT) {
		for (int i = 0; i < 10; i++)
			b[n++] = 0x80;
		b[n++] = 0x00;
	} else if (d == D_BIT64) {
		b[n++] = 0x80 | 50;	/* 50, and bit 64 in the 10th byte */
		for (int i = 0; i < 8; i++)
			b[n++] = 0x80;
		b[n++] = 0x02;
	} else {
		n += uv(b + n, d == D_LEN32 ? 50 + (1ull << 32) : d == D_LEN0 ? 0 : 50);
	}
	if (d == D_TRAILING)
		b[n++] = 0x55;
	return n;
}

static void damage_of_every_kind_is_refused(void **state)
{
	unsigned char b[POST_BLOCK_MAX];
	struct post_ev ev;
	struct post_iter it;
	size_t n;

	(void)state;
	/* the undamaged one reads back */
	n = craft(b, D_NONE);
	assert_int_equal(post_check(b, n), 0);
	assert_int_equal(post_iter_init(&it, b, n), 0);
	assert_int_equal(post_next(&it, &ev), 1);
	assert_true(ev.gseq == 10 && ev.uid == 1 && ev.off == 0 && ev.len == 100);
	assert_int_equal(post_next(&it, &ev), 1);
	assert_true(ev.gseq == 11 && ev.uid == 1 && ev.off == 100 && ev.len == 50);
	assert_int_equal(post_next(&it, &ev), 0);
	for (int d = D_NONE + 1; d < D_ALL; d++) {
		n = craft(b, (enum damage)d);
		refused_everywhere(b, n);
	}
}

static void find_byte_and_gseq(void **state)
{
	unsigned seed = 99;
	struct model m;

	(void)state;
	for (int round = 0; round < 100; round++) {
		uint64_t total = 0, before = 0;

		fill_random(&m, &seed, 1 + rnd(&seed, POST_BLOCK_EVENTS), 5);
		for (size_t i = 0; i < m.n; i++)
			total += m.ev[i].len;
		for (size_t i = 0; i < m.n; i++) {
			uint64_t k = before + rnd(&seed, m.ev[i].len), skip, b;
			uint32_t at;

			assert_int_equal(post_find_byte(m.blk, m.len, k, &at, &skip), 0);
			assert_int_equal(at, i);
			assert_int_equal(skip, k - before);
			/* a gseq at or just after the previous: this entry */
			assert_int_equal(post_find_gseq(m.blk, m.len, m.ev[i].gseq, &at, &b), 0);
			assert_int_equal(at, i);
			assert_int_equal(b, before);
			if (i) {
				assert_int_equal(post_find_gseq(m.blk, m.len, m.ev[i - 1].gseq + 1,
								&at, &b), 0);
				assert_int_equal(at, i);
			}
			before += m.ev[i].len;
		}
		{
			uint64_t skip, b;
			uint32_t at;

			assert_int_equal(post_find_byte(m.blk, m.len, total, &at, &skip), -ENXIO);
			assert_int_equal(post_find_gseq(m.blk, m.len, m.ev[m.n - 1].gseq + 1, &at,
							&b), 0);
			assert_int_equal(at, m.n);
			assert_int_equal(b, total);
			assert_int_equal(post_find_gseq(m.blk, m.len, 0, &at, &b), 0);
			assert_int_equal(at, 0);
		}
	}
}

struct drop_arg {
	uint64_t uid, below;	/* drop @uid's events with gseq < @below */
};

static bool drop_cb(void *arg, const struct post_ev *ev)
{
	const struct drop_arg *d = arg;

	return ev->uid == d->uid && ev->gseq < d->below;
}

/* Deletion (every event of a task) and retention (a task's head) against the model. */
static void filter_takes_a_task_out(void **state)
{
	unsigned seed = 5;
	struct model m, want;

	(void)state;
	for (int round = 0; round < 300; round++) {
		struct drop_arg d;
		long n;

		fill_random(&m, &seed, 1 + rnd(&seed, POST_BLOCK_EVENTS), 1 + round % 4);
		d.uid = 1 + rnd(&seed, 4);
		d.below = round % 2 ? UINT64_MAX : m.ev[rnd(&seed, m.n)].gseq;
		want.n = 0;
		for (size_t i = 0; i < m.n; i++)
			if (!drop_cb(&d, &m.ev[i]))
				want.ev[want.n++] = m.ev[i];
		n = post_filter(m.blk, m.len, drop_cb, &d, want.blk);
		assert_true(n > 0);
		want.len = (size_t)n;
		check_block(&want);
		/* and appends go on after it */
		if (want.n < POST_BLOCK_EVENTS) {
			struct post_ev ev = { m.ev[m.n - 1].gseq + 1, d.uid, 1u << 20, 9 };

			append(&want, &ev);
			check_block(&want);
		}
	}
}

/* Every cut of a block, and random flips: refused or decoded whole, never read past. */
static void damaged_blocks_are_refused(void **state)
{
	unsigned seed = 77;
	struct model m;
	unsigned char *copy;

	(void)state;
	for (int round = 0; round < 40; round++) {
		fill_random(&m, &seed, 1 + rnd(&seed, POST_BLOCK_EVENTS), 3);
		for (size_t cut = 0; cut < m.len; cut++) {
			copy = malloc(cut ? cut : 1);	/* exactly @cut bytes: ASan sees an overread */
			assert_non_null(copy);
			memcpy(copy, m.blk, cut);
			assert_int_equal(post_check(copy, cut), -EUCLEAN);
			free(copy);
		}
		for (int flip = 0; flip < 200; flip++) {
			struct post_iter it;
			struct post_ev ev;
			uint64_t skip;
			uint32_t at;
			int rc;

			copy = malloc(m.len);
			assert_non_null(copy);
			memcpy(copy, m.blk, m.len);
			copy[rnd(&seed, m.len)] ^= (unsigned char)(1 + rnd(&seed, 255));
			rc = post_check(copy, m.len);
			assert_true(rc == 0 || rc == -EUCLEAN);
			rc = post_find_byte(copy, m.len, rnd(&seed, 1u << 16), &at, &skip);
			assert_true(rc == 0 || rc == -ENXIO || rc == -EUCLEAN);
			if (!post_iter_init(&it, copy, m.len))
				while ((rc = post_next(&it, &ev)) > 0)
					;
			free(copy);
		}
	}
}

/*
 * What the format costs: events of 200 bytes from 8 tasks writing runs of
 * one type (the benchmark's shape) take at most 9 bytes each.
 */
static void bytes_per_event(void **state)
{
	unsigned seed = 11;
	uint64_t end[9] = { 0 }, gseq = 1000000, total = 0, events = 0;

	(void)state;
	for (int b = 0; b < 50; b++) {
		struct model m;

		m.n = 0;
		m.len = post_init(m.blk);
		while (m.n < POST_BLOCK_EVENTS) {
			uint64_t uid = 1 + rnd(&seed, 8);
			int run = 1 + (int)rnd(&seed, 8);

			for (int k = 0; k < run && m.n < POST_BLOCK_EVENTS; k++) {
				struct post_ev ev = { gseq += 1 + rnd(&seed, 3), uid, end[uid],
						      (uint32_t)(180 + rnd(&seed, 40)) };

				end[uid] += ev.len + (rnd(&seed, 4) ? 0 : 200);
				append(&m, &ev);
			}
		}
		check_block(&m);
		total += m.len;
		events += m.n;
	}
	printf("postings: %.2f bytes per event\n", (double)total / (double)events);
	assert_true(total <= 9 * events);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(appends_round_trip),
		cmocka_unit_test(edges_of_every_number),
		cmocka_unit_test(full_and_out_of_order),
		cmocka_unit_test(appends_refuse_what_no_event_is),
		cmocka_unit_test(full_by_bytes),
		cmocka_unit_test(damage_of_every_kind_is_refused),
		cmocka_unit_test(find_byte_and_gseq),
		cmocka_unit_test(filter_takes_a_task_out),
		cmocka_unit_test(damaged_blocks_are_refused),
		cmocka_unit_test(bytes_per_event),
	};

	return tu_run_tests("postings", tests, sizeof(tests) / sizeof(tests[0]));
}
