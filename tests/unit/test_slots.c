/* test_slots.c - upload slots in all and per address (slots.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "floodshare/slots.h"

static void test_slots_refuse_a_third_upload_to_one_address(void **state)
{
    struct slots *s = slots_new(8, 2);

    (void)state;
    assert_non_null(s);
    assert_int_equal(slots_take(s, "127.0.0.1", 0), SLOTS_OK);
    assert_int_equal(slots_take(s, "127.0.0.1", 0), SLOTS_OK);
    assert_int_equal(slots_take(s, "127.0.0.1", 0), SLOTS_ADDR_FULL);
    assert_int_equal(slots_used(s, "127.0.0.1"), 2);
    assert_int_equal(slots_used_total(s), 2);
    /* another address is not affected */
    assert_int_equal(slots_take(s, "127.0.0.2", 0), SLOTS_OK);
    assert_int_equal(slots_used(s, "127.0.0.2"), 1);
    /* a slot given back can be taken again */
    slots_give(s, "127.0.0.1");
    assert_int_equal(slots_take(s, "127.0.0.1", 0), SLOTS_OK);
    assert_int_equal(slots_used_total(s), 3);
    slots_free(s);
}

static void test_slots_refuse_beyond_the_total(void **state)
{
    struct slots *s = slots_new(3, 2);
    char host[32];

    (void)state;
    for (int i = 0; i < 3; i++) {
        snprintf(host, sizeof host, "10.0.0.%d", i + 1);
        assert_int_equal(slots_take(s, host, 0), SLOTS_OK);
    }
    assert_int_equal(slots_take(s, "10.0.0.9", 0), SLOTS_FULL);
    /* full in all wins over the address's own count: the reply is the same BUSY */
    assert_int_equal(slots_take(s, "10.0.0.1", 0), SLOTS_FULL);
    slots_give(s, "10.0.0.2");
    assert_int_equal(slots_used(s, "10.0.0.2"), 0);
    assert_int_equal(slots_take(s, "10.0.0.9", 0), SLOTS_OK);
    assert_int_equal(slots_used_total(s), 3);
    slots_free(s);
}

/* Rows are reused: many addresses coming and going never run out of rows
 * while fewer than `total` hold a slot. */
static void test_slots_reuse_rows_of_departed_addresses(void **state)
{
    struct slots *s = slots_new(3, 1);
    char host[32];

    (void)state;
    assert_int_equal(slots_take(s, "192.168.0.1", 0), SLOTS_OK);
    for (int i = 0; i < 1000; i++) {
        snprintf(host, sizeof host, "10.%d.%d.1", i / 250, i % 250);
        assert_int_equal(slots_take(s, host, 0), SLOTS_OK);
        assert_int_equal(slots_take(s, host, 0), SLOTS_ADDR_FULL);
        slots_give(s, host);
        assert_int_equal(slots_used(s, host), 0);
    }
    assert_int_equal(slots_used_total(s), 1);
    assert_int_equal(slots_used(s, "192.168.0.1"), 1);
    slots_free(s);
}

static void test_slots_ignore_a_give_never_taken(void **state)
{
    struct slots *s = slots_new(2, 2);

    (void)state;
    slots_give(s, "127.0.0.1");
    assert_int_equal(slots_used_total(s), 0);
    assert_int_equal(slots_take(s, "127.0.0.1", 0), SLOTS_OK);
    slots_give(s, "127.0.0.2");
    assert_int_equal(slots_used_total(s), 1);
    slots_free(s);
}

static void test_slots_per_addr_above_total_acts_as_total(void **state)
{
    struct slots *s = slots_new(2, 5);

    (void)state;
    assert_int_equal(slots_take(s, "127.0.0.1", 0), SLOTS_OK);
    assert_int_equal(slots_take(s, "127.0.0.1", 0), SLOTS_OK);
    assert_int_equal(slots_take(s, "127.0.0.1", 0), SLOTS_FULL);
    slots_free(s);
    assert_null(slots_new(0, 1));
    assert_null(slots_new(1, 0));
    slots_free(NULL);
}

static void test_slots_refuse_a_penalized_address_until_its_term_ends(void **state)
{
    struct slots *s = slots_new(8, 2);

    (void)state;
    slots_penalize(s, "127.0.0.1", 10000);
    assert_int_equal(slots_take(s, "127.0.0.1", 9999), SLOTS_PENALIZED);
    assert_int_equal(slots_take(s, "127.0.0.2", 9999), SLOTS_OK); /* others are not */
    assert_int_equal(slots_take(s, "127.0.0.1", 10000), SLOTS_OK);
    /* penalized again while holding a slot: the next take is refused */
    slots_penalize(s, "127.0.0.1", 20000);
    assert_int_equal(slots_take(s, "127.0.0.1", 15000), SLOTS_PENALIZED);
    slots_free(s);
}

/* A full box forgets the term that ends first, never the newest one. */
static void test_slots_penalty_box_is_bounded(void **state)
{
    struct slots *s = slots_new(1, 1);
    char host[32];

    (void)state;
    for (int i = 0; i < SLOTS_PENALTY_MAX; i++) {
        snprintf(host, sizeof host, "10.0.0.%d", i + 1);
        slots_penalize(s, host, 1000 + (uint64_t)i);
    }
    slots_penalize(s, "10.0.1.1", 5000); /* evicts 10.0.0.1 (ends at 1000) */
    assert_int_equal(slots_take(s, "10.0.0.1", 500), SLOTS_OK);
    slots_give(s, "10.0.0.1");
    assert_int_equal(slots_take(s, "10.0.0.2", 500), SLOTS_PENALIZED);
    assert_int_equal(slots_take(s, "10.0.1.1", 4999), SLOTS_PENALIZED);
    slots_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slots_refuse_a_third_upload_to_one_address),
        cmocka_unit_test(test_slots_refuse_beyond_the_total),
        cmocka_unit_test(test_slots_reuse_rows_of_departed_addresses),
        cmocka_unit_test(test_slots_ignore_a_give_never_taken),
        cmocka_unit_test(test_slots_per_addr_above_total_acts_as_total),
        cmocka_unit_test(test_slots_refuse_a_penalized_address_until_its_term_ends),
        cmocka_unit_test(test_slots_penalty_box_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
