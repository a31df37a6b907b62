/*
 * proc.c - process titles, child signal setup, pid file (see proc.h)
 */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "log.h"

extern char **environ;

static char *title_start; /* argv[0]; the area runs title_len bytes */
static size_t title_len;
/* the environment's new home; volatile so that the store stays and the
 * array stays reachable (it is never freed) */
static char **volatile moved_env;

void
sc_proc_title_init(int argc, char **argv)
{
    char *end;
    size_t n = 0;
    char **env;

    if (argc < 1 || argv[0] == NULL) {
        return;
    }
    end = argv[0] + strlen(argv[0]) + 1;
    for (int i = 1; i < argc; i++) {
        if (argv[i] == end) {
            end = argv[i] + strlen(argv[i]) + 1;
        }
    }
    for (n = 0; environ[n] != NULL; n++) {
    }
    env = calloc(n + 1, sizeof(char *));
    if (env == NULL) {
        return; /* keep the short title area */
    }
    for (size_t i = 0; i < n; i++) {
        if (environ[i] == end) {
            end = environ[i] + strlen(environ[i]) + 1;
        }
        env[i] = strdup(environ[i]);
        if (env[i] == NULL) {
            return;
        }
    }
    environ = env;
    moved_env = env;
    title_start = argv[0];
    title_len = (size_t)(end - argv[0]);
    for (int i = 1; i < argc; i++) {
        argv[i] = NULL;
    }
}

void
sc_proc_set_title(const char *title, const char *comm)
{
    if (title_start != NULL && title_len > 1) {
        size_t n = strlen(title);
        if (n > title_len - 1) {
            n = title_len - 1;
        }
        memcpy(title_start, title, n);
        memset(title_start + n, 0, title_len - n);
    }
    prctl(PR_SET_NAME, comm, 0, 0, 0);
}

int
sc_proc_child_init(pid_t master)
{
    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGCHLD,
                               SIGQUIT, SIGUSR1, SIGUSR2};
    sigset_t none;

    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        signal(sigs[i], SIG_DFL);
    }
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) != 0) {
        return -1;
    }
    /* the master may have died before prctl took effect */
    return getppid() == master ? 0 : -1;
}

int
sc_proc_write_pid_file(const char *path, pid_t pid)
{
    char tmp[1100], buf[32];
    int fd, n, e;

    n = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return -1;
    }
    n = snprintf(buf, sizeof(buf), "%d\n", (int)pid);
    if (write(fd, buf, (size_t)n) != n) {
        e = errno;
        close(fd);
        unlink(tmp);
        errno = e;
        return -1;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        e = errno;
        unlink(tmp);
        errno = e;
        return -1;
    }
    return 0;
}

void
sc_proc_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t was = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            sc_log(SC_LOG_WARN, "could not raise the open file limit from "
                   "%llu to %llu: %s", (unsigned long long)was,
                   (unsigned long long)rl.rlim_max, strerror(errno));
            return;
        }
    }
    sc_log(SC_LOG_DEBUG, "open file limit: %llu per process",
           (unsigned long long)rl.rlim_cur);
}

int
sc_proc_ncpu(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    return n < 1 ? 1 : (int)n;
}
