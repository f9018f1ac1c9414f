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
		{ 2, 1, 0, 0 },
		{ 3, 1, UINT64_MAX - 5, 5 },
		{ 4, 1, 0, 1 },		/* behind the previous end of its task */
		{ UINT64_MAX - 1, UINT64_MAX, 7, 1 },
		{ UINT64_MAX, 0, 0, UINT32_MAX },
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
		cmocka_unit_test(find_byte_and_gseq),
		cmocka_unit_test(filter_takes_a_task_out),
		cmocka_unit_test(damaged_blocks_are_refused),
		cmocka_unit_test(bytes_per_event),
	};

	return tu_run_tests("postings", tests, sizeof(tests) / sizeof(tests[0]));
}
