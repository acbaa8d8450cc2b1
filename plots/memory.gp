# plots/memory.gp: memory per rank stacked by category (weights, KV cache,
# scratch), one bar per (case, tp, rank).
# Data (memory.dat): one block: label weights kv_cache scratch, in `unit`.
load plotsdir.'/common.gp'
set title "Memory per rank by category\n".title
set xlabel 'case, TP degree and rank'
set ylabel sprintf('memory per rank (%s)', unit)
set style data histogram
set style histogram rowstacked
set style fill solid 0.85 border -1
set boxwidth 0.75
set xtics rotate by -60 left font ',9'
set yrange [0:*]
set bmargin 12
plot datafile using 2:xtic(1) title columnheader(2) lc rgb '#4477aa', \
     '' using 3 title columnheader(3) lc rgb '#ee6677', \
     '' using 4 title columnheader(4) lc rgb '#ccbb44'
