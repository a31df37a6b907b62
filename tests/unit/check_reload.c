/*
 * check_reload.c - SIGHUP's one reload (reload.c): what the master reads,
 * what it keeps from the start, and the snapshot the workers take
 */
#include "reload.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "jwt.h"

#define SECRET_A "reload-secret-A-0123456789-0123456789-0123456789-0123456789"
#define SECRET_B "reload-secret-B-9876543210-9876543210-9876543210-9876543210"

static char dir[64];
static char secret_path[128], conf_path[128];

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void
setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/check_reload.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(secret_path, sizeof(secret_path), "%s/jwt.secret", dir);
    snprintf(conf_path, sizeof(conf_path), "%s/seatcast.conf", dir);
    write_file(secret_path, SECRET_A "\n");
    write_file(conf_path, "max-subscriptions = 7\nworkers = 9\n"
                          "max-events = 1000\nlisten = 127.0.0.1:4999\n");
    unsetenv("SEATCAST_JWT_SECRET");
}

static void
teardown(void)
{
    unlink(secret_path);
    unlink(conf_path);
    rmdir(dir);
}

/* The configuration in force: started with other fixed settings. */
static void
running(struct sc_config *cfg)
{
    char err[256];

    sc_config_defaults(cfg, 2);
    ck_assert_int_eq(sc_config_set(cfg, "listen", "127.0.0.1:3999", err,
                                   sizeof(err)),
                     0);
    ck_assert_int_eq(sc_config_finish(cfg, err, sizeof(err)), 0);
}

static int
read_again(struct sc_reload *r, const struct sc_config *run, char *err,
           size_t errlen)
{
    char a0[] = "seatcast", a1[] = "-c", a3[] = "--jwt-secret-file";
    char *argv[] = {a0, a1, conf_path, a3, secret_path, NULL};

    return sc_reload_read(r, run, 5, argv, err, errlen);
}

START_TEST(read_keeps_what_is_fixed_at_start)
{
    struct sc_config run;
    struct sc_reload r;
    char err[256];

    running(&run);
    ck_assert_int_eq(read_again(&r, &run, err, sizeof(err)), 0);
    /* the file's new values apply ... */
    ck_assert_uint_eq(r.cfg->max_subscriptions, 7);
    /* ... but not to the sockets, the processes and the registry */
    ck_assert_int_eq(r.cfg->workers, run.workers);
    ck_assert_uint_eq(r.cfg->max_events, run.max_events);
    ck_assert_uint_eq(r.cfg->nlisten, 1);
    ck_assert_uint_eq(r.cfg->listen[0].port, 3999);
    ck_assert_str_eq(r.cfg->shm_name, run.shm_name);
    /* the key material, the trailing newline dropped */
    ck_assert_uint_eq(r.secret_len, strlen(SECRET_A));
    ck_assert_mem_eq(r.secret, SECRET_A, r.secret_len);
    ck_assert_ptr_null(r.pem);
    sc_reload_fini(&r);
}
END_TEST

START_TEST(read_refuses_a_bad_file)
{
    struct sc_config run;
    struct sc_reload r;
    char err[256] = "";

    running(&run);
    write_file(conf_path, "this is not a configuration file\n");
    ck_assert_int_eq(read_again(&r, &run, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, conf_path));
    ck_assert_ptr_null(r.cfg);
}
END_TEST

START_TEST(read_refuses_an_empty_secret)
{
    struct sc_config run;
    struct sc_reload r;
    char err[256] = "";

    running(&run);
    write_file(secret_path, "");
    ck_assert_int_eq(read_again(&r, &run, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "is empty"));
    ck_assert_ptr_null(r.cfg);
    ck_assert_ptr_null(r.secret);
}
END_TEST

START_TEST(snapshot_round_trip)
{
    struct sc_config run;
    struct sc_reload r, got;
    struct sc_jwt_keys *k;
    char err[256];
    int fd;

    running(&run);
    ck_assert_int_eq(read_again(&r, &run, err, sizeof(err)), 0);
    fd = sc_reload_pack(&r);
    ck_assert_int_ge(fd, 0);
    /* the file changes after the master checked it: the snapshot not */
    write_file(secret_path, SECRET_B "\n");
    ck_assert_int_eq(sc_reload_unpack(fd, &got, err, sizeof(err)), 0);
    ck_assert_mem_eq(got.cfg, r.cfg, sizeof(*r.cfg));
    ck_assert_uint_eq(got.secret_len, strlen(SECRET_A));
    ck_assert_mem_eq(got.secret, SECRET_A, got.secret_len);
    k = sc_reload_keys(&got, err, sizeof(err));
    ck_assert_ptr_nonnull(k);
    sc_jwt_keys_free(k);
    /* sealed: nobody writes into it once made */
    ck_assert_int_lt(pwrite(fd, "x", 1, 0), 0);
    close(fd);
    sc_reload_fini(&got);
    sc_reload_fini(&r);
    sc_reload_fini(&r); /* idempotent */
}
END_TEST

START_TEST(unpack_refuses_another_file)
{
    struct sc_reload got;
    char err[256] = "";
    char path[128];
    int fd;

    snprintf(path, sizeof(path), "%s/junk", dir);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "not a snapshot at all, not at all", 33), 33);
    ck_assert_int_eq(sc_reload_unpack(fd, &got, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "unreadable configuration snapshot");
    ck_assert_ptr_null(got.cfg);
    close(fd);
    unlink(path);
}
END_TEST

static Suite *
reload_suite(void)
{
    Suite *s = suite_create("reload");
    TCase *tc = tcase_create("reload");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, read_keeps_what_is_fixed_at_start);
    tcase_add_test(tc, read_refuses_a_bad_file);
    tcase_add_test(tc, read_refuses_an_empty_secret);
    tcase_add_test(tc, snapshot_round_trip);
    tcase_add_test(tc, unpack_refuses_another_file);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(reload_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
