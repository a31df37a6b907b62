/*
 * lg_proc.c - memory and CPU of one seatcast server, read from /proc
 *
 * See lg_proc.h.  Reads only; a process that exits between readdir()
 * and open() is skipped.  proc(5): the command in /proc/PID/stat may
 * hold spaces and parentheses, so fields are split after the last ')'.
 */
#include "lg_proc.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* What /proc/PID/stat says of one process. */
struct stat_line {
    char comm[32];
    pid_t ppid;
    uint64_t ticks; /* utime + stime */
};

/* Reads /proc/PID/stat; -1 if the process is gone or the line is odd. */
static int
read_stat(pid_t pid, struct stat_line *st)
{
    char path[64], line[1024], *open_p, *close_p;
    unsigned long long utime, stime;
    int ppid;
    size_t clen;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "re");
    if (f == NULL) {
        return -1;
    }
    if (fgets(line, sizeof(line), f) == NULL) {
        fclose(f);
        return -1;
    }
    fclose(f);
    open_p = strchr(line, '(');
    close_p = strrchr(line, ')');
    if (open_p == NULL || close_p == NULL || close_p < open_p) {
        return -1;
    }
    clen = (size_t)(close_p - open_p - 1);
    if (clen >= sizeof(st->comm)) {
        clen = sizeof(st->comm) - 1;
    }
    memcpy(st->comm, open_p + 1, clen);
    st->comm[clen] = '\0';
    /* fields 3.. : state ppid pgrp session tty tpgid flags minflt
     * cminflt majflt cmajflt utime stime */
    if (sscanf(close_p + 2,
               "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ppid,
               &utime, &stime) != 3) {
        return -1;
    }
    st->ppid = (pid_t)ppid;
    st->ticks = (uint64_t)utime + (uint64_t)stime;
    return 0;
}

/* Pss of a process in KiB from smaps_rollup; 0 if it is gone. */
static uint64_t
read_pss(pid_t pid)
{
    char path[64], line[256];
    unsigned long long kib = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
    f = fopen(path, "re");
    if (f == NULL) {
        return 0;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        /* "Pss:" only: Pss_Anon, Pss_File, ... are parts of it */
        if (strncmp(line, "Pss:", 4) == 0) {
            if (sscanf(line + 4, "%llu", &kib) != 1) {
                kib = 0;
            }
            break;
        }
    }
    fclose(f);
    return (uint64_t)kib;
}

/* Time on CPU in ns from /proc/PID/schedstat (finer than the ticks of
 * utime and stime; seatcast's processes have one thread); 0 if absent. */
static uint64_t
read_run_ns(pid_t pid)
{
    char path[64];
    unsigned long long ns = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
    f = fopen(path, "re");
    if (f == NULL) {
        return 0;
    }
    if (fscanf(f, "%llu", &ns) != 1) {
        ns = 0;
    }
    fclose(f);
    return (uint64_t)ns;
}

static bool
is_pid_name(const char *s)
{
    if (*s == '\0') {
        return false;
    }
    for (; *s != '\0'; s++) {
        if (!isdigit((unsigned char)*s)) {
            return false;
        }
    }
    return true;
}

int
lg_proc_sample(pid_t master, struct lg_proc_sample *s)
{
    struct stat_line st;
    struct dirent *de;
    bool found_master = false;
    DIR *d = opendir("/proc");

    memset(s, 0, sizeof(*s));
    if (d == NULL) {
        fprintf(stderr, "loadgen: could not open /proc: %s\n", strerror(errno));
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        pid_t pid;

        if (!is_pid_name(de->d_name)) {
            continue;
        }
        pid = (pid_t)strtol(de->d_name, NULL, 10);
        if (read_stat(pid, &st) != 0 || strncmp(st.comm, "sc-", 3) != 0) {
            continue;
        }
        if (pid != master && st.ppid != master) {
            continue; /* another server's process */
        }
        found_master = found_master || pid == master;
        s->nprocs++;
        s->cpu_ticks += st.ticks;
        s->run_ns += read_run_ns(pid);
        s->pss_kib += read_pss(pid);
    }
    closedir(d);
    if (!found_master) {
        fprintf(stderr, "loadgen: seatcast master %d not found in /proc\n",
                (int)master);
        return -1;
    }
    return 0;
}

uint64_t
lg_proc_tick_ns(void)
{
    long hz = sysconf(_SC_CLK_TCK);

    return hz > 0 ? 1000000000ULL / (uint64_t)hz : 10000000ULL;
}
