/*
 * lg_selftest.h - checks of the loadgen's own parsers (loadgen --self-test)
 */
#ifndef LG_SELFTEST_H
#define LG_SELFTEST_H

/* Runs every case of lg_ws.c; returns the number of failures. */
int lg_selftest(void);

#endif /* LG_SELFTEST_H */
