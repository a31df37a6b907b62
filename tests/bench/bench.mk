# bench.mk - seatcast's benchmark (included by the top Makefile)
#
#   make bench                        N = 1000 10000 50000 100000
#   make bench BENCH_N="1000 10000"   other connection counts
#   make bench BENCH_ARGS="--events 100 --perf"   more bench.py options
#   make bench-smoke                  N = 200, ~5 s; fails on any lost,
#                                     duplicated or reordered delivery
#   make bench-dbcost                 what each source costs the booking
#                                     database (also run by make bench)
#   make bench-onsale                 onsale: N subscribers of one event,
#                                     K bookings at R/s, freshness; median
#                                     of BENCH_REPEAT runs
#   make bench-onsale BENCH_ONSALE="100000 1000 500"
#   make bench-onsale-smoke           N=200 K=300 R=300; fails unless exact
#
# Runs as root: a throwaway PostgreSQL (runuser -u postgres), soft
# RLIMIT_NOFILE raised to the hard one.  Results: $(BUILD)/bench/ (results.json,
# results.txt, bench.png; bench-smoke: smoke/; bench-onsale: onsale.json,
# onsale.txt).  See tests/bench/README.md.

BENCH_DIR    = $(BUILD)/bench
BENCH_N     ?= 1000 10000 50000 100000
BENCH_ARGS  ?=
BENCH_SRC    = $(wildcard tests/bench/*.c)
BENCH_HDR    = $(wildcard tests/bench/*.h)
BENCH_CFLAGS = -std=c11 -D_GNU_SOURCE -O2 $(WARN) \
               $(shell pkg-config --cflags libpq 2>/dev/null)
BENCH_LIBS   = $(shell pkg-config --libs libpq 2>/dev/null)
BENCH_DEB    = gnuplot-nox postgresql-15 libpq-dev python3
BENCH_DRIVER = /usr/bin/python3 tests/bench/bench.py \
               --seatcast $(BUILD)/seatcast --loadgen $(BENCH_DIR)/loadgen \
               --out $(BENCH_DIR)

BENCH_ONSALE ?= 10000 3000 1000
BENCH_REPEAT ?= 3

.PHONY: bench bench-smoke bench-deps bench-dbcost bench-onsale \
        bench-onsale-smoke

$(BENCH_DIR)/loadgen: $(BENCH_SRC) $(BENCH_HDR) tests/bench/bench.mk
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -o $@ $(BENCH_SRC) $(BENCH_LIBS)

# The top Makefile's deps check, for the bench's packages.
bench-deps:
	@$(MAKE) --no-print-directory deps DEB_ALL="$(BENCH_DEB)"

bench: bench-deps $(BUILD)/seatcast $(BENCH_DIR)/loadgen
	$(BENCH_DRIVER) --n "$(BENCH_N)" $(BENCH_ARGS)
	$(MAKE) --no-print-directory bench-dbcost

# its own directory: a smoke run must not overwrite the last bench's results
bench-smoke: $(BUILD)/seatcast $(BENCH_DIR)/loadgen
	$(BENCH_DIR)/loadgen --self-test
	$(BENCH_DRIVER) --smoke --out $(BENCH_DIR)/smoke

# Onsale: "N K R" (several: comma-separated), each BENCH_REPEAT times
bench-onsale: bench-deps $(BUILD)/seatcast $(BENCH_DIR)/loadgen
	$(BENCH_DRIVER) --onsale "$(BENCH_ONSALE)" --repeat $(BENCH_REPEAT) \
	    $(BENCH_ARGS)

# exact accounting of a small onsale (no timing asserted); own directory
bench-onsale-smoke: $(BUILD)/seatcast $(BENCH_DIR)/loadgen
	$(BENCH_DIR)/loadgen --self-test
	$(BENCH_DRIVER) --onsale "200 300 300" --check --settle 0.5 \
	    --out $(BENCH_DIR)/onsale-smoke $(BENCH_ARGS)

# What following the database costs it: bookings/s from concurrent pgbench
# writers with no seatcast, with --source notify and --source logical
# (fsync on), the sources taking turns 3 times (medians).
# BENCH_DBCOST_ARGS="--writers '1 8 32' --seconds 15 --repeat 3".
BENCH_DBCOST_ARGS ?= --repeat 3
bench-dbcost: bench-deps $(BUILD)/seatcast
	/usr/bin/python3 tests/bench/dbcost.py --seatcast $(BUILD)/seatcast \
	    --out $(BENCH_DIR) $(BENCH_DBCOST_ARGS)
