# plots/common.gp: terminal and style shared by every template (loaded
# first). Inputs, set by `ryz plot` with gnuplot -e:
#   term     'png' (pngcairo when this gnuplot has it, else png) or 'svg'
#   outfile  the image to write
#   title    suite and machine line ("suite ci | CPU, N cores | ...")
# Text is not "enhanced": case and op names keep their underscores.
if (term eq 'svg') {
    set terminal svg size 1000,650 dynamic noenhanced font 'sans,12' background rgb 'white'
} else {
    if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {
        set terminal pngcairo size 1000,650 noenhanced font 'sans,11' background rgb 'white'
    } else {
        set terminal png size 1000,650 noenhanced
    }
}
set output outfile
set grid lw 0.5 lc rgb '#d0d0d0'
set key outside right top vertical box opaque noautotitle
set border lw 1.2

# Byte sizes as tick labels on a log-2 x axis ("16 B", "4 KiB", "1 MiB"):
# templates with a size axis run `eval bytes_xtics`.
bytes_label(v) = v < 2**10 ? sprintf('%d B', v) : v < 2**20 ? sprintf('%d KiB', v / 2**10) : \
                 v < 2**30 ? sprintf('%d MiB', v / 2**20) : sprintf('%d GiB', v / 2**30)
bytes_xtics = "set xtics (); do for [e=0:40:2] { set xtics add (bytes_label(2**e) 2**e) }"
