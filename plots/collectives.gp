# plots/collectives.gp: collective latency against message size, log-log,
# one colour per (op, TP): p50 solid, p99 dashed. Sizes seen in several
# cases keep the row with the most calls.
# Data (collectives.dat): n blocks: bytes p50_us p99_us busbw_gbs.
load plotsdir.'/common.gp'
set title "Collective latency against message size (p50 solid, p99 dashed)\n".title
set xlabel 'message size per rank (bytes; KiB = 1024 B; log scale)'
set ylabel 'latency per call (microseconds, log scale)'
set logscale xy 2
set logscale y 10
eval bytes_xtics
plot for [i=0:n-1] datafile index i using 1:2 with linespoints lw 2 pt 7 lc i+1 title columnheader(2), \
     for [i=0:n-1] datafile index i using 1:3 with linespoints lw 1.5 dt 2 pt 6 lc i+1 title columnheader(3)
