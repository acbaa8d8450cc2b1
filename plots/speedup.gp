# plots/speedup.gp: speedup against TP, one colour per case, decode solid
# and prefill dashed, with the ideal line speedup = TP.
# Data (scaling.dat): n blocks, one per case: tp decode_speedup
# prefill_speedup decode_eff prefill_eff; first line of a block: titles.
load plotsdir.'/common.gp'
set title "Speedup against TP (T1 / Tk, median of timed runs)\n".title
set xlabel 'tensor-parallel degree TP (ranks)'
set ylabel 'speedup (x, relative to TP=1)'
set offsets graph 0.05, graph 0.05, 0, 0
set xrange [*:*]
set yrange [0:*]
set xtics 1
plot x lw 2 dt 3 lc rgb 'black' title 'ideal (speedup = TP)', \
     for [i=0:n-1] datafile index i using 1:2 with linespoints lw 2 pt 7 lc i+1 title columnheader(2), \
     for [i=0:n-1] datafile index i using 1:3 with linespoints lw 1.5 dt 2 pt 6 lc i+1 title columnheader(3)
