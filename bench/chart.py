"""PNG chart of the speed ratios (sealmail relative to Dovecot), drawn by gnuplot
(Debian: gnuplot-nox) or, when gnuplot is missing, by matplotlib (python3-matplotlib).
One horizontal bar per workload on a log scale, the 1.0 line marked: right of it
sealmail is faster (or, for memory, smaller)."""

import os
import shutil
import subprocess
import tempfile

_WHY = ""


def why_not():
    return _WHY


def _data(rows):
    out = []
    for r in rows:
        if r.get("ratio"):
            label = r["workload"]
            if r.get("target") is not None:
                label += " (%s)" % r["status"]
            out.append((label, r["ratio"]))
    return out[::-1]   # gnuplot draws from the bottom: first workload on top


def _gnuplot(data, png, title):
    d = tempfile.mkdtemp(prefix="sm-bench-chart-")
    try:
        dat = os.path.join(d, "ratios.dat")
        with open(dat, "w") as f:
            for i, (label, v) in enumerate(data):
                f.write('%d "%s" %.6g\n' % (i, label.replace('"', "'").replace("_", "-"), v))
        lo = min(min(v for _, v in data), 1.0) / 1.5
        hi = max(max(v for _, v in data), 1.0) * 1.5
        n = len(data)
        script = f"""
set terminal pngcairo size 1000,{120 + 34 * n} font ",10" noenhanced
set output "{png}"
set title "{title}\\nspeed ratio sealmail/Dovecot (log scale; > 1: sealmail faster or smaller)"
set logscale x
set xrange [{lo}:{hi}]
set yrange [-0.7:{n - 0.3}]
set ytics nomirror
set grid xtics
set style fill solid 0.8
set arrow from 1,-0.7 to 1,{n - 0.3} nohead lw 2 lc rgb "black"
unset key
plot "{dat}" using (($3>=1)?1:$3):1:(($3>=1)?1:$3):(($3>=1)?$3:1):($1-0.35):($1+0.35):(($3>=1)?0x2ca02c:0xd62728):ytic(2) \\
       with boxxyerror lc rgb variable, \\
     "{dat}" using ($3):1:(sprintf(" %.2f", $3)) with labels left
"""
        gp = os.path.join(d, "chart.gp")
        with open(gp, "w") as f:
            f.write(script)
        r = subprocess.run(["gnuplot", gp], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
        if r.returncode != 0 or not os.path.exists(png):
            raise RuntimeError("gnuplot: " + r.stderr.decode(errors="replace")[-500:])
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _matplotlib(data, png, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels = [x[0] for x in data]
    vals = [x[1] for x in data]
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.34 * len(data)))
    ax.barh(range(len(vals)), vals, color=["#2ca02c" if v >= 1 else "#d62728" for v in vals])
    ax.set_yticks(range(len(vals)), labels)
    ax.set_xscale("log")
    ax.axvline(1.0, color="black")
    for i, v in enumerate(vals):
        ax.text(v, i, " %.2f" % v, va="center")
    ax.set_title(title + "\nspeed ratio sealmail/Dovecot (> 1: sealmail faster or smaller)")
    fig.tight_layout()
    fig.savefig(png)


def render(rows, png, title="sealmail vs Dovecot"):
    """Writes png; returns True, or False with why_not() saying why."""
    global _WHY
    data = _data(rows)
    if not data:
        _WHY = "no ratio to draw"
        return False
    if os.path.exists(png):
        os.unlink(png)
    errors = []
    if shutil.which("gnuplot"):
        try:
            _gnuplot(data, png, title)
            return True
        except (OSError, RuntimeError, subprocess.SubprocessError) as e:
            errors.append(str(e))
    try:
        _matplotlib(data, png, title)
        return True
    except ImportError:
        errors.append("neither gnuplot nor matplotlib: apt-get install gnuplot-nox")
    except Exception as e:   # noqa: BLE001
        errors.append("matplotlib: %s" % e)
    _WHY = "; ".join(errors)
    return False
