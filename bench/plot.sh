#!/usr/bin/env bash
# Draws the ratio table that `scripts/bench --redis_tasks_table=PATH` writes as a PNG bar chart:
# each run's throughput as a ratio to raw hiredis, with the issue's target for it; and, when the
# table has them, the many-callers rows (multiplexed runs against pooled run()) in a second chart
# (the PNG's name with -multiplex before .png).
#   bench/plot.sh [TABLE [PNG]]    (defaults: bench/results.md and bench/results.png)
# Installs gnuplot (Debian's gnuplot-nox) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
command -v gnuplot >/dev/null || ensure_packages gnuplot-nox

table=${1:-bench/results.md}
png=${2:-bench/results.png}
[[ -s $table ]] || { echo "plot.sh: no table at $table; run scripts/bench --redis_tasks_table=$table" >&2; exit 1; }

data=$(mktemp)
trap 'rm -f "$data"' EXIT

# One line per row: label, ratio, target (NaN when there is none), met (1/0).
awk -F'|' '
  function trim(s) { gsub(/^ +| +$/, "", s); return s }
  function size(n) { return n == 16 ? "16 B" : n == 1024 ? "1 KiB" : n == 1048576 ? "1 MiB" : n " B" }
  /^\| task_/ {
    name = trim($2); ratio = trim($5); goal = trim($6)
    if (name ~ /threads:/) { sub(/.*threads:/, "", name); label = "set, " name " thread" (name == "1" ? "" : "s") }
    else if (name ~ /run_many/) { label = "batch of 1000" }
    else { split(name, p, "/"); sub(/^task_/, "", p[1]); label = p[1] " " size(p[2]) }
    target = "NaN"; met = 1
    if (goal ~ />=/) { target = goal; sub(/.*>= */, "", target); met = (goal ~ /^ok/) }
    printf "\"%s\" %s %s %d\n", label, ratio, target, met
  }' "$table" >"$data"
[[ -s $data ]] || { echo "plot.sh: no rows in $table" >&2; exit 1; }

prefect=$(sed -n 's/.*redis_tasks is \([0-9.]*\)x faster.*/\1/p' "$table")
title="redis_tasks runs/s as a ratio to raw hiredis (1.0), median of interleaved repetitions"
[[ -n $prefect ]] && title="$title\\nPrefect pattern (connect, AUTH, SELECT, SET, close per run): redis_tasks is ${prefect}x faster"
# The label is quoted and has spaces: count fields from the end.
low=$(awk '{ v = $(NF-2); if ($(NF-1) != "NaN" && $(NF-1) < v) v = $(NF-1); if (min == "" || v < min) min = v }
           END { m = min - 0.05; print (m > 0.8 ? 0.8 : m) }' "$data")
# Far-ahead bars (1 MiB SET avoids hiredis's copy) are cut at 1.3 and keep their value label.
high=1.3

terminal="pngcairo noenhanced size 1000,520 font 'sans,10'"
gnuplot -e "set terminal" 2>&1 | grep -q pngcairo || terminal="png noenhanced size 1000,520"
gnuplot <<EOF
set terminal $terminal
set output "$png"
set title "$title"
set ylabel "throughput ratio to raw hiredis"
set yrange [$low:$high]
set style fill solid 0.8 border -1
set boxwidth 0.6
set grid ytics
set xtics rotate by -35 left
set rmargin 6
set key top left
set arrow from graph 0, first 1 to graph 1, first 1 nohead dashtype 2 lc rgb "#444444"
clip(v) = v > $high ? $high : v
plot "$data" using 0:(\$4 > 0.5 ? clip(\$2) : NaN):xtic(1) with boxes lc rgb "#3a7d44" title "ratio (target met or none)", \
     "$data" using 0:(\$4 > 0.5 ? NaN : clip(\$2)) with boxes lc rgb "#c0392b" title "ratio (target missed)", \
     "$data" using (\$0 - 0.38):3:(0.76):(0) with vectors nohead lw 3 lc rgb "#1f3b73" title "target", \
     "$data" using 0:(\$2 > $high ? $high - 0.04 : \$2):(sprintf("%.3f", \$2)) with labels offset 0,0.7 font ",8" notitle
EOF
echo "plot.sh: wrote $png"

# Many callers: multiplexed run() (threads) and run_async (in flight) against pooled run().
mux_png=${png%.png}-multiplex.png
awk -F'|' '
  function trim(s) { gsub(/^ +| +$/, "", s); return s }
  /^\| mux_/ {
    name = trim($2); ratio = trim($6); goal = trim($7)
    n = name; sub(/.*[:]/, "", n)
    label = (name ~ /async/ ? "run_async, " n " in flight" : "run(), " n " thread" (n == "1" ? "" : "s"))
    target = "NaN"; met = 1
    if (goal ~ />=/) { target = goal; sub(/.*>= */, "", target); met = (goal ~ /^ok/) }
    printf "\"%s\" %s %s %d\n", label, ratio, target, met
  }' "$table" >"$data"
[[ -s $data ]] || exit 0
top=$(awk '{ v = $(NF-2); if ($(NF-1) != "NaN" && $(NF-1) > v) v = $(NF-1); if (v > max) max = v }
           END { print max + 0.6 }' "$data")
gnuplot <<EOF
set terminal $terminal
set output "$mux_png"
set title "Many callers: multiplexed runs/s as a ratio to pooled run() (1.0) with as many callers\\n2 shared connections against a pool of 8, median of interleaved repetitions"
set ylabel "throughput ratio to pooled run()"
set yrange [0:$top]
set style fill solid 0.8 border -1
set boxwidth 0.6
set grid ytics
set xtics rotate by -35 left
set rmargin 12
set key top left
set arrow from graph 0, first 1 to graph 1, first 1 nohead dashtype 2 lc rgb "#444444"
plot "$data" using 0:(\$4 > 0.5 ? \$2 : NaN):xtic(1) with boxes lc rgb "#3a7d44" title "ratio (target met or none)", \
     "$data" using 0:(\$4 > 0.5 ? NaN : \$2) with boxes lc rgb "#c0392b" title "ratio (target missed)", \
     "$data" using (\$0 - 0.38):3:(0.76):(0) with vectors nohead lw 3 lc rgb "#1f3b73" title "target", \
     "$data" using 0:2:(sprintf("%.2f", \$2)) with labels offset 0,0.7 font ",8" notitle
EOF
echo "plot.sh: wrote $mux_png"
