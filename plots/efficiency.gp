# plots/efficiency.gp: parallel efficiency (speedup / TP) against TP, one
# colour per case, decode solid and prefill dashed, with the ideal 1.0.
# Data: scaling.dat (see speedup.gp), columns 4 and 5.
load plotsdir.'/common.gp'
set title "Parallel efficiency against TP (speedup / TP)\n".title
set xlabel 'tensor-parallel degree TP (ranks)'
set ylabel 'efficiency (speedup / TP, 1 = ideal)'
set offsets graph 0.05, graph 0.05, 0, 0
set xrange [*:*]
set yrange [0:1.15]
set xtics 1
plot 1 lw 2 dt 3 lc rgb 'black' title 'ideal (1.0)', \
     for [i=0:n-1] datafile index i using 1:4 with linespoints lw 2 pt 7 lc i+1 title columnheader(4), \
     for [i=0:n-1] datafile index i using 1:5 with linespoints lw 1.5 dt 2 pt 6 lc i+1 title columnheader(5)
