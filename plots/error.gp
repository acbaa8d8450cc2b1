# plots/error.gp: largest absolute logit error against the unsharded
# baseline (teacher-forced, every position) against TP, log y.
# Data (error.dat): n blocks, one per case: tp max_abs; exact zeros are
# written as `zero` (1e-12) so they still show on the log axis.
load plotsdir.'/common.gp'
set title "Logit error against the TP=1 baseline (max |a - b|)\n".title
set xlabel 'tensor-parallel degree TP (ranks)'
set ylabel 'max abs logit error (logit units, log scale)'
set logscale y
set format y '%.0e'
set offsets graph 0.05, graph 0.05, 0, 0
set xrange [*:*]
set yrange [zero/10:*]
set xtics 1
set label 1 sprintf('exact zeros plotted at %.0e', zero) at graph 0.02, graph 0.04 font ',10'
plot for [i=0:n-1] datafile index i using 1:2 with linespoints lw 2 pt 7 lc i+1 title columnheader(2)
