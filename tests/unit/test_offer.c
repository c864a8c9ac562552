/* test_offer.c - offer_judge(): who may send what into a share, and the
 * reasons a refusal names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "floodshare/cfg.h"
#include "floodshare/offer.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)

static struct msg an_offer(uint64_t size)
{
    struct msg m;

    memset(&m, 0, sizeof m);
    m.type = MSG_OFFER;
    snprintf(m.name, sizeof m.name, "big.iso");
    m.kind = MSG_KIND_FILE;
    m.size = size;
    memset(m.md5, 'a', MSG_MD5_LEN);
    snprintf(m.holder.host, sizeof m.holder.host, "127.0.0.1");
    m.holder.port = 10811;
    m.peer_id = 1;
    return m;
}

/* A neighbour's offer on the same host, nothing in the way. */
static struct offer_view a_view(void)
{
    struct offer_view v;

    memset(&v, 0, sizeof v);
    v.send_from = CFG_ACCEPT_NEIGHBOURS;
    v.neighbour = 1;
    snprintf(v.source.host, sizeof v.source.host, "127.0.0.1");
    v.source.port = 40000;
    return v;
}

static void assert_refused(const struct offer_view *v, const struct msg *m, const char *word,
                           const char *text)
{
    char why[MSG_MAX_TEXT + 1] = "";
    const char *got = offer_judge(v, m, why, sizeof why);

    if (!got)
        fail_msg("accepted, expected a refusal \"%s\"", text);
    assert_string_equal(got, word);
    assert_string_equal(why, text);
}

static void test_offer_accepts_a_neighbour_by_default(void **state)
{
    struct offer_view v = a_view();
    struct msg m = an_offer(500 * MiB);
    char why[MSG_MAX_TEXT + 1];

    assert_null(offer_judge(&v, &m, why, sizeof why));
    v.send_from = CFG_ACCEPT_ANY;
    v.neighbour = 0;
    assert_null(offer_judge(&v, &m, why, sizeof why));
}

static void test_offer_send_from_none_refuses_everyone(void **state)
{
    struct offer_view v = a_view();
    struct msg m = an_offer(1);

    v.send_from = CFG_ACCEPT_NONE;
    assert_refused(&v, &m, "send_from", "not accepted from 127.0.0.1:10811 (send_from = none)");
}

static void test_offer_neighbours_refuses_a_stranger(void **state)
{
    struct offer_view v = a_view();
    struct msg m = an_offer(1);

    v.neighbour = 0;
    assert_refused(&v, &m, "send_from",
                   "not accepted from 127.0.0.1:10811 (send_from = neighbours, and no proven "
                   "neighbour link of this peer comes from there)");
}

static void test_offer_holder_on_another_host_is_refused(void **state)
{
    struct offer_view v = a_view();
    struct msg m = an_offer(1);

    v.send_from = CFG_ACCEPT_ANY;
    snprintf(m.holder.host, sizeof m.holder.host, "192.0.2.7");
    assert_refused(&v, &m, "holder",
                   "not accepted from 192.0.2.7:10811 (the offer came from 127.0.0.1, another "
                   "host)");
}

static void test_offer_existing_name_is_refused(void **state)
{
    struct offer_view v = a_view();
    struct msg m = an_offer(1);

    v.exists = 1;
    assert_refused(&v, &m, "exists", "already exists: big.iso");
}

static void test_offer_max_item(void **state)
{
    struct offer_view v = a_view();
    struct msg m = an_offer(4 * GiB + 400 * MiB);
    char why[MSG_MAX_TEXT + 1];

    v.max_item = 4 * GiB;
    assert_refused(&v, &m, "max_item", "item too large: big.iso is 4.4 GiB, over max_item 4 GiB");
    m.size = 4 * GiB; /* exactly max_item is taken */
    assert_null(offer_judge(&v, &m, why, sizeof why));
}

static void test_offer_quota_as_the_issue_writes_it(void **state)
{
    struct offer_view v = a_view();
    struct msg m = an_offer(500 * MiB);
    char why[MSG_MAX_TEXT + 1];

    v.quota = 10 * GiB;
    v.used = 9 * GiB + 800 * MiB;
    assert_refused(&v, &m, "quota", "over quota: 9.8 GiB of 10 GiB used, item is 500 MiB");
    v.used = 9 * GiB + 524 * MiB; /* exactly fills it: taken */
    assert_null(offer_judge(&v, &m, why, sizeof why));
}

static void test_offer_quota_already_exceeded_does_not_wrap(void **state)
{
    struct offer_view v = a_view();
    struct msg m = an_offer(1);

    v.quota = 1 * GiB;
    v.used = 2 * GiB; /* quota lowered below what the share holds */
    assert_refused(&v, &m, "quota", "over quota: 2 GiB of 1 GiB used, item is 1 B");
    v.used = 0;
    m.size = UINT64_MAX;
    assert_refused(&v, &m, "quota", "over quota: 0 B of 1 GiB used, item is 16 EiB");
}

static void test_offer_iec_units(void **state)
{
    char b[32];

    assert_string_equal(offer_iec(b, sizeof b, 0), "0 B");
    assert_string_equal(offer_iec(b, sizeof b, 1023), "1023 B");
    assert_string_equal(offer_iec(b, sizeof b, 1024), "1 KiB");
    assert_string_equal(offer_iec(b, sizeof b, 1536), "1.5 KiB");
    assert_string_equal(offer_iec(b, sizeof b, 500 * MiB), "500 MiB");
    assert_string_equal(offer_iec(b, sizeof b, 10 * GiB), "10 GiB");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offer_accepts_a_neighbour_by_default),
        cmocka_unit_test(test_offer_send_from_none_refuses_everyone),
        cmocka_unit_test(test_offer_neighbours_refuses_a_stranger),
        cmocka_unit_test(test_offer_holder_on_another_host_is_refused),
        cmocka_unit_test(test_offer_existing_name_is_refused),
        cmocka_unit_test(test_offer_max_item),
        cmocka_unit_test(test_offer_quota_as_the_issue_writes_it),
        cmocka_unit_test(test_offer_quota_already_exceeded_does_not_wrap),
        cmocka_unit_test(test_offer_iec_units),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
