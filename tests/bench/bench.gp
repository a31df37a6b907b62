# bench.gp - seatcast's benchmark chart (written by tests/bench/bench.py)
#
#   gnuplot -e "datafile='build/bench/results.dat'; \
#               outfile='build/bench/bench.png'" tests/bench/bench.gp
#
# datafile columns: N, messages/s, seat_updates/s, burst p99 (ms),
# paced p99 (ms).  Deliveries per second on the left axis, latency on the
# right, N on a log scale.

if (!exists("datafile")) datafile = 'build/bench/results.dat'
if (!exists("outfile")) outfile = 'build/bench/bench.png'

set terminal pngcairo noenhanced size 960,600 font "sans,10"
set output outfile
set title "seatcast fan-out to N subscribers: burst of 50 bookings, and paced 2 bookings/s"
set key outside below center box maxrows 2 width 2
set bmargin 7
set grid xtics ytics
set logscale x
set xlabel "subscribed connections (N)"
set ylabel "deliveries per second"
set y2label "commit-to-client latency p99 (ms)"
set format y "%.1s%c"
set ytics nomirror
set y2tics
set yrange [0:*]
set y2range [0:*]

plot datafile using 1:2 with linespoints lw 2 pt 7 \
         title "burst: messages/s (booking_created + seat_update)", \
     datafile using 1:3 with linespoints lw 2 pt 5 \
         title "burst: seat_update/s", \
     datafile using 1:4 axes x1y2 with linespoints lw 2 dt 2 pt 9 \
         title "burst p99 (ms, right)", \
     datafile using 1:5 axes x1y2 with linespoints lw 2 dt 3 pt 11 \
         title "paced 2/s p99 (ms, right)"
