# plots/busbw.gp: collective bus bandwidth (nccl-tests convention, at p50)
# against message size, log-log, one colour per (op, TP).
# Data: collectives.dat (see collectives.gp), column 4.
load plotsdir.'/common.gp'
set title "Collective bus bandwidth against message size (at p50)\n".title
set xlabel 'message size per rank (bytes; KiB = 1024 B; log scale)'
set ylabel 'bus bandwidth (GB/s, log scale)'
set logscale x 2
set logscale y 10
eval bytes_xtics
plot for [i=0:n-1] datafile index i using 1:4 with linespoints lw 2 pt 7 lc i+1 title columnheader(4)
