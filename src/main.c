/*
 * main.c - seatcast's entry point: the subcommands and the server
 *
 *   seatcast [options]            run the server (master)
 *   seatcast -t [options]         check the configuration and exit
 *   seatcast stats [...]          print a running server's registry
 *   seatcast token --sub ID [...] mint a development token
 *
 * Bad flags or configuration: one line on stderr, exit 2.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "jwt.h"
#include "log.h"
#include "master.h"
#include "proc.h"
#include "secret.h"
#include "stats.h"
#include "token_cli.h"

/* A private copy of argv: the process title overwrites the original. */
static char **
copy_argv(int argc, char **argv)
{
    char **copy = calloc((size_t)argc + 1, sizeof(char *));

    if (copy == NULL) {
        return NULL;
    }
    for (int i = 0; i < argc; i++) {
        copy[i] = strdup(argv[i]);
        if (copy[i] == NULL) {
            return NULL;
        }
    }
    return copy;
}

static void
free_argv(char **args, int argc)
{
    if (args == NULL) {
        return;
    }
    for (int i = 0; i < argc; i++) {
        free(args[i]);
    }
    free(args);
}

/* The server: parse, check, run.  Returns the exit status. */
static int
serve(struct sc_config *cfg, int argc, char **argv, char **args)
{
    struct sc_jwt_keys *keys;
    char err[1024];
    int status;

    sc_config_defaults(cfg, sc_proc_ncpu());
    if (sc_config_parse_argv(cfg, argc, args, err, sizeof(err)) != 0 ||
        sc_config_finish(cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "seatcast: %s\n", err);
        return 2;
    }
    {
        char host[256] = "";
        if (gethostname(host, sizeof(host) - 1) != 0) {
            host[0] = '\0';
        }
        sc_config_default_slot(cfg, host);
    }
    if (cfg->show_help) {
        fputs(sc_config_usage(), stdout);
        return 0;
    }
    if (cfg->show_version) {
        printf("seatcast %s\n", SC_VERSION);
        return 0;
    }
    /* the keys now, so that a missing secret is a clear exit 2 rather
     * than workers failing one after another */
    keys = sc_secret_load_keys(cfg, err, sizeof(err));
    if (keys == NULL) {
        fprintf(stderr, "seatcast: %s\n", err);
        return 2;
    }
    if (sc_secret_file_exposed(cfg)) {
        fprintf(stderr, "seatcast: warning: JWT secret file \"%s\" may be "
                "read or written by other users: chmod o-rwx it\n",
                cfg->jwt_secret_file);
    }
    if (sc_secret_env_ignored(cfg)) {
        fprintf(stderr, "seatcast: warning: SEATCAST_JWT_SECRET is ignored "
                "with --jwt-public-key: HS* tokens are refused unless "
                "--jwt-secret-file is given\n");
    }
    if (cfg->test_only) {
        sc_jwt_keys_free(keys);
        if (cfg->source == SC_SOURCE_LOGICAL) {
            printf("seatcast: source logical, publication %s, slot %s\n",
                   cfg->publication, cfg->slot);
        } else {
            printf("seatcast: source notify, channel %s\n", cfg->channel);
        }
        printf("seatcast: configuration ok\n");
        return 0;
    }
    sc_log_init(cfg->log_level, cfg->log_format == SC_LOG_FORMAT_JSON);
    sc_proc_raise_nofile();
    sc_proc_title_init(argc, argv);
    status = sc_master_run(cfg, &keys, argc, args);
    sc_jwt_keys_free(keys); /* NULL once the master has freed them */
    return status;
}

int
main(int argc, char **argv)
{
    struct sc_config *cfg;
    char **args;
    int status;

    if (argc > 1 && strcmp(argv[1], "stats") == 0) {
        return sc_stats_main(argc - 1, argv + 1);
    }
    if (argc > 1 && strcmp(argv[1], "token") == 0) {
        return sc_token_main(argc - 1, argv + 1);
    }
    cfg = calloc(1, sizeof(*cfg));
    args = copy_argv(argc, argv);
    if (cfg == NULL || args == NULL) {
        fprintf(stderr, "seatcast: out of memory\n");
        free(cfg);
        free_argv(args, argc);
        return 1;
    }
    status = serve(cfg, argc, argv, args);
    free(cfg);
    free_argv(args, argc);
    return status;
}
