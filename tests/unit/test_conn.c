/* test_conn.c - message framing over a real socket: exact boundaries, deadlines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "floodshare/conn.h"
#include "floodshare/net.h"

static const char GET_LINE[] = "FLOOD/1 GET qid=7f2a90c3d1e4b5a6 ttl=3 hops=1 "
                               "origin=127.0.0.1:10811 from=127.0.0.1:10812 name=3.txt\n";
static const char ITEM_LINE[] = "FLOOD/1 ITEM kind=file size=5 md5=00000000000000000000000000000000"
                                " len=5 zmd5=00000000000000000000000000000000\n";

static void pair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
}

static void test_two_messages_in_one_write_are_read_one_by_one(void **state)
{
    int sv[2];
    struct conn c;
    struct msg m;
    const char *why;
    char both[sizeof GET_LINE * 2];

    (void)state;
    pair(sv);
    snprintf(both, sizeof both, "%s%s", GET_LINE, GET_LINE);
    assert_int_equal(write(sv[1], both, strlen(both)), (ssize_t)strlen(both));
    close(sv[1]);
    conn_init(&c, sv[0], 1000);
    assert_int_equal(conn_read_msg(&c, &m, 1000, &why), FS_OK);
    assert_int_equal(m.type, MSG_GET);
    assert_int_equal(conn_read_msg(&c, &m, 1000, &why), FS_OK);
    assert_string_equal(m.name, "3.txt");
    assert_int_equal(conn_read_msg(&c, &m, 1000, &why), FS_ECLOSED);
    close(sv[0]);
}

static void test_body_bytes_read_with_the_header_are_kept_for_the_body(void **state)
{
    int sv[2];
    struct conn c;
    struct msg m;
    const char *why;
    char buf[256], body[5];

    (void)state;
    pair(sv);
    int n = snprintf(buf, sizeof buf, "%shello%s", ITEM_LINE, GET_LINE);
    assert_int_equal(write(sv[1], buf, (size_t)n), n);
    conn_init(&c, sv[0], 1000);
    assert_int_equal(conn_read_msg(&c, &m, 1000, &why), FS_OK);
    assert_int_equal(m.type, MSG_ITEM);
    assert_int_equal(conn_read_body(&c, body, sizeof body), FS_OK);
    assert_memory_equal(body, "hello", 5);
    assert_int_equal(conn_read_msg(&c, &m, 1000, &why), FS_OK);
    assert_int_equal(m.type, MSG_GET);
    close(sv[0]);
    close(sv[1]);
}

static void test_header_split_across_writes_is_reassembled(void **state)
{
    int sv[2];
    struct conn c;
    struct msg m;
    const char *why;

    (void)state;
    pair(sv);
    conn_init(&c, sv[0], 2000);
    for (size_t i = 0; i < strlen(GET_LINE); i += 7) {
        size_t n = strlen(GET_LINE) - i < 7 ? strlen(GET_LINE) - i : 7;
        assert_int_equal(write(sv[1], GET_LINE + i, n), (ssize_t)n);
    }
    assert_int_equal(conn_read_msg(&c, &m, 1000, &why), FS_OK);
    assert_string_equal(m.qid, "7f2a90c3d1e4b5a6");
    close(sv[0]);
    close(sv[1]);
}

static void test_silent_peer_times_out_at_the_idle_limit(void **state)
{
    int sv[2];
    struct conn c;
    struct msg m;
    const char *why;

    (void)state;
    pair(sv);
    conn_init(&c, sv[0], 5000);
    uint64_t t0 = net_now_ms();
    assert_int_equal(conn_read_msg(&c, &m, 100, &why), FS_ETIMEDOUT);
    assert_true(net_now_ms() - t0 < 2000);
    close(sv[0]);
    close(sv[1]);
}

static void test_half_header_times_out_at_the_header_deadline(void **state)
{
    int sv[2];
    struct conn c;
    struct msg m;
    const char *why;

    (void)state;
    pair(sv);
    /* Idle wait is long, the header deadline short: once a byte came, the
     * header deadline rules, however long the idle wait. */
    conn_init(&c, sv[0], 200);
    assert_int_equal(write(sv[1], "FLOOD/1 GET", 11), 11);
    uint64_t t0 = net_now_ms();
    assert_int_equal(conn_read_msg(&c, &m, 60000, &why), FS_ETIMEDOUT);
    assert_true(net_now_ms() - t0 < 2000);
    close(sv[0]);
    close(sv[1]);
}

static void test_stream_cut_mid_header_is_malformed(void **state)
{
    int sv[2];
    struct conn c;
    struct msg m;
    const char *why = NULL;

    (void)state;
    pair(sv);
    assert_int_equal(write(sv[1], "FLOOD/1 GET qid=", 16), 16);
    close(sv[1]);
    conn_init(&c, sv[0], 1000);
    assert_int_equal(conn_read_msg(&c, &m, 1000, &why), FS_EPROTO);
    assert_non_null(why);
    close(sv[0]);
}

static void test_error_reply_is_a_parseable_message(void **state)
{
    int sv[2];
    struct conn c, w;
    struct msg m;
    const char *why;

    (void)state;
    pair(sv);
    conn_init(&w, sv[1], 1000);
    assert_int_equal(conn_send_error(&w, "malformed", "ttl is not a number", 1000), FS_OK);
    conn_init(&c, sv[0], 1000);
    assert_int_equal(conn_read_msg(&c, &m, 1000, &why), FS_OK);
    assert_int_equal(m.type, MSG_ERROR);
    assert_string_equal(m.code, "malformed");
    assert_string_equal(m.text, "ttl is not a number");
    close(sv[0]);
    close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_messages_in_one_write_are_read_one_by_one),
        cmocka_unit_test(test_body_bytes_read_with_the_header_are_kept_for_the_body),
        cmocka_unit_test(test_header_split_across_writes_is_reassembled),
        cmocka_unit_test(test_silent_peer_times_out_at_the_idle_limit),
        cmocka_unit_test(test_half_header_times_out_at_the_header_deadline),
        cmocka_unit_test(test_stream_cut_mid_header_is_malformed),
        cmocka_unit_test(test_error_reply_is_a_parseable_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
