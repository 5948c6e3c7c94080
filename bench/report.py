#!/usr/bin/env python3
"""Writes docs/performance.md and its two plots from one bench/compare.py run.

    build/bench-venv/bin/python bench/report.py [build/bench/compare.json] [--doc docs/performance.md]
        [--png docs/performance.png] [--roofline docs/roofline.png] [--note "text"]

The document holds only what the JSON holds (machine, versions, command, load average,
tables, geometric means), so a rerun of compare.py + report.py replaces it whole.
"""

import argparse
import json
import math
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


KEEP_MARKER = "<!-- bench/report.py keeps everything below this line on a rerun -->"

PERF_PER_WATT = '## Perf per watt\n\n`anvil --power=auto|rapl|nvml|none` (runtime/power.h) measures energy over exactly the timed loop of the CLI (warm-up excluded) and ends the performance summary with `[I] Power: <W> W average over <s> s (<source>, <scope>), <n> inferences/s/W` — inferences/s/W is inferences per joule — or `[I] Power: no source (<why>)`; `--exportProfile` repeats it as `powerW`, `energyJ`, `powerSource`, `inferencesPerSecondPerWatt`. Sources: for CPU engines the RAPL package counters of `/sys/class/powercap` (the top-level `intel-rapl:N` zones named `package-N`, summed over sockets; their core/uncore/dram subzones, `psys` and the `intel-rapl-mmio` copies are not added; AMD CPUs appear under the same names since Linux 5.11, the older out-of-tree `amd_energy` hwmon driver is not read), polled every 250 ms so that a counter wrapping at `max_energy_range_uj` (2^32 µJ on AMD: about 21 s at 200 W) is unwrapped at each step; `energy_uj` is root-only since Linux 5.10, which the line reports as "not readable: permission denied". For CUDA engines NVML, opened with `dlopen("libnvidia-ml.so.1")` (nothing links it; without a driver the line says "NVML: not available"): GPU 0\'s total-energy counter (mJ, Volta and newer) where it exists, else `nvmlDeviceGetPowerUsage` sampled every 15 ms on a background thread and integrated by the trapezoid rule. Both cover the whole package or board, idle parts and other processes included: compare runs on an otherwise quiet machine and over several seconds (`--duration`). The machines this page was measured on have neither (`/sys/class/powercap` is absent in the KVM guests, no GPU), so no perf-per-watt figures are listed yet.'


def geomean(xs):
    xs = [x for x in xs if x and x > 0 and math.isfinite(x)]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def fmt_ms(x):
    if x is None:
        return "n/a"
    return f"{x:.3g}" if x < 1 else (f"{x:.2f}" if x < 10 else f"{x:.1f}")


def ratio(a, b):
    return a / b if a and b else None


def fmt_ratio(x):
    return "n/a" if x is None else f"{x:.2f}x"


# A round trip above this: the host runs the two virtual CPUs far apart (another die or
# socket); near ones measure ~30-100 ns on the EPYC guests, far ones ~300-900. Runs that
# record compare.py's --far-ns use theirs.
FAR_RTT_NS = 300


def round_values(rows, suffix):
    """Every round's value of every runtime's `<runtime><suffix>` list over rows, Nones dropped."""
    return [x for r in rows for k in r if k.endswith(suffix) for x in r[k] if x is not None]


def placements(row, who):
    """Per multi-thread timing of runtime `who` in row, the larger of its round trips before
    and after (the after one is missing from runs before 2026-12-06 13:30)."""
    before = row.get(f"{who}_round_core_rtt_ns") or []
    after = row.get(f"{who}_round_core_rtt_after_ns") or [None] * len(before)
    return [max(x for x in (b, a) if x is not None) for b, a in zip(before, after) if b is not None]


def timing_placements(rows):
    """placements() of every runtime of every row."""
    suffix = "_round_core_rtt_ns"
    return [x for r in rows for k in r if k.endswith(suffix) for x in placements(r, k[:-len(suffix)])]


def disturbed(row, who, limit):
    """Rounds of row's runtime `who` whose kept timing still had others above `limit` CPUs."""
    if limit is None:
        return 0
    return sum(1 for x in row.get(f"{who}_round_foreign_cpus") or [] if x is not None and x > limit)


def model_table(rows, threads, tag="", limit=None, far_ns=None):
    """The table of one thread count for the runtimes anvil{tag}, ort{tag}, ov{tag} (tag ""
    is the whole CPU; "_avx2" the AVX2-only view of compare.py --avx2), and the geometric
    means of anvil's ratios to the other two (None where a column is empty). A cell with a
    round that stayed disturbed after compare.py's retries (others above `limit` CPUs) gets a
    dagger; one whose rounds ran with the CPUs far apart (over `far_ns`) in at least half of
    them, so that its median is a far timing, a double dagger."""
    a_k, o_k, v_k = (f"{w}{tag}_median_ms" for w in ("anvil", "ort", "ov"))

    def mark(r, w, text):
        if disturbed(r, f"{w}{tag}", limit):
            text += " †"
        if far_ns:
            placed = placements(r, f"{w}{tag}")
            if placed and 2 * sum(1 for x in placed if x > far_ns) >= len(placed):
                text += " ‡"
        return text
    lines = ["| model | anvil ms | onnxruntime ms | OpenVINO ms | anvil/onnxruntime | anvil/OpenVINO "
             "| p99 anvil / onnxruntime / OpenVINO ms |", "|---|---:|---:|---:|---:|---:|---:|"]
    r_ort, r_ov = [], []
    for r in rows:
        if r["threads"] != threads:
            continue
        a, o, v = r.get(a_k), r.get(o_k), r.get(v_k)
        ro, rv = ratio(a, o), ratio(a, v)
        r_ort.append(ro)
        r_ov.append(rv)
        p99 = " / ".join(fmt_ms(r.get(f"{w}{tag}_p99_ms")) for w in ("anvil", "ort", "ov"))
        lines.append(f"| {r['model']} | {mark(r, 'anvil', fmt_ms(a))} | {mark(r, 'ort', fmt_ms(o))} | "
                     f"{mark(r, 'ov', fmt_ms(v))} | {fmt_ratio(ro)} | {fmt_ratio(rv)} | {p99} |")
    g_ort, g_ov = geomean(r_ort), geomean(r_ov)
    g = lambda x: "n/a" if x is None or not math.isfinite(x) else f"**{x:.2f}x**"
    worst = max((x for x in r_ort if x is not None), default=None)
    lines.append(f"| **geometric mean** | | | | {g(g_ort)} | {g(g_ov)} | |")
    return "\n".join(lines), g_ort, g_ov, worst


def bar_chart(data, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    threads = data["threads"]
    fig, axes = plt.subplots(len(threads), 1, figsize=(11, 4.2 * len(threads)), squeeze=False)
    for ax, t in zip(axes[:, 0], threads):
        rows = [r for r in data["rows"] if r["threads"] == t and r.get("ort_median_ms")]
        names = [r["model"] for r in rows]
        xs = range(len(rows))
        series = [("anvil", "ort", "anvil"), ("ov", "ort", "OpenVINO")]
        if any(r.get("anvil_avx2_median_ms") and r.get("ort_avx2_median_ms") for r in rows):
            series.append(("anvil_avx2", "ort_avx2", "anvil vs onnxruntime, both AVX2-only"))
        w = 0.8 / len(series)
        for k, (num, den, label) in enumerate(series):
            vals = [(r.get(f"{num}_median_ms") or float("nan")) / (r.get(f"{den}_median_ms") or float("nan"))
                    for r in rows]
            # Bars grow up or down from onnxruntime's 1.0, so faster and slower read at a glance.
            ax.bar([x + (k - (len(series) - 1) / 2) * w for x in xs], [v - 1 for v in vals], w, bottom=1,
                   label=label)
        ax.axhline(1.0, color="black", linewidth=0.8, label="onnxruntime = 1")
        ax.set_xticks(list(xs))
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("median latency / onnxruntime's")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        # Minor labels at 2, 3, 5 x 10^k only: all of them would overlap near a decade.
        ax.yaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(
            lambda y, _: f"{y:g}" if y > 0 and round(y / 10 ** math.floor(math.log10(y) + 1e-9)) in (2, 3, 5) else ""))
        ax.set_title(f"batch 1, {t} thread{'s' if t > 1 else ''} (below 1: faster than onnxruntime)")
        ax.legend(fontsize=8)
        ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def roofline_plot(roof, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    peaks, gemms = roof["peaks"], roof["gemms"]
    fig, ax = plt.subplots(figsize=(9, 6))
    xs = [g["flops"] / g["bytes"] for g in gemms]
    lo, hi = min(xs) / 1.5, max(xs) * 1.5
    bw = peaks.get("triad_gbs")
    for key, label, style in (("avx512_fma_gflops", "AVX-512 FMA peak", "-"), ("avx2_fma_gflops", "AVX2 FMA peak", "--")):
        p = peaks.get(key)
        if not p:
            continue
        grid = [lo * (hi / lo) ** (i / 200) for i in range(201)]
        roofs = [min(p, bw * x) if bw else p for x in grid]
        ax.plot(grid, roofs, style, color="gray", label=f"{label} {p:.0f} GFLOP/s (one core)")
    if bw:
        ax.plot([], [], " ", label=f"slope: triad bandwidth {bw:.1f} GB/s (one core)")
    ax.scatter(xs, [g.get("anvil_gflops", float("nan")) for g in gemms], label="anvil", s=22, marker="o")
    ax.scatter(xs, [g["ort_gflops"] for g in gemms], label="onnxruntime", s=22, marker="x")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity, FLOP / byte (A, B and C read or written once)")
    ax.set_ylabel("achieved GFLOP/s, one thread")
    ax.set_title("Weight GEMMs of the zoo (MatMul/Gemm/1x1 Conv) as one-node MatMul models")
    ax.grid(which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("json", nargs="?", default=os.path.join(ROOT, "build", "bench", "compare.json"))
    ap.add_argument("--doc", default=os.path.join(ROOT, "docs", "performance.md"))
    ap.add_argument("--png", default=os.path.join(ROOT, "docs", "performance.png"))
    ap.add_argument("--roofline", default=os.path.join(ROOT, "docs", "roofline.png"))
    ap.add_argument("--raw", default=os.path.join(ROOT, "docs", "performance.json"),
                    help="a copy of the run's JSON next to the page")
    ap.add_argument("--gemm-rows", type=int, default=40, help="GEMM shapes listed in the table")
    ap.add_argument("--note", default="", help="a paragraph to add under 'The run' (e.g. what else ran)")
    args = ap.parse_args(argv)
    with open(args.json) as f:
        d = json.load(f)

    m, v = d["machine"], d["versions"]
    lscpu = m.get("lscpu", {})
    out = ["# Performance: anvil next to onnxruntime and OpenVINO", "",
           "Written by `bench/report.py` from one run of `bench/compare.py` (`bench/run_all.sh` does both; "
           "see bench/README.md for how each runtime is timed). Rerun it to replace this page; do not edit "
           "the numbers by hand.", "",
           "## The run", "",
           f"- when: {d['started']} to {d.get('finished', '?')} (UTC)",
           f"- machine: {m.get('cpu', '?')}, {m.get('cpus')} CPUs "
           f"({lscpu.get('Core(s) per socket', '?')} cores x {lscpu.get('Thread(s) per core', '?')} thread), "
           f"{(lscpu['Hypervisor vendor'] + ' guest') if lscpu.get('Hypervisor vendor') else 'no hypervisor reported'}; "
           f"L1d {lscpu.get('L1d cache', '?')}, L2 {lscpu.get('L2 cache', '?')}, L3 {lscpu.get('L3 cache', '?')}",
           f"- ISA: {', '.join(m.get('isa', []))}",
           f"- load average (1, 5, 15 min) before: {', '.join(f'{x:.2f}' for x in d['load_before'])}; "
           f"after: {', '.join(f'{x:.2f}' for x in d.get('load_after', []))}"
           + (f"; 1-minute load at the end of each round: {', '.join(f'{x:.2f}' for x in d['load_per_round'])}"
              if d.get("load_per_round") else ""),
           f"- versions: anvil {v.get('anvil')}" + (f" (library code as of {v['anvil_code']})" if v.get("anvil_code") else "")
           + f", onnxruntime {v.get('onnxruntime')}, OpenVINO {v.get('openvino')}, "
           f"PyTorch {v.get('torch', 'n/a')}, onnx {v.get('onnx')}, numpy {v.get('numpy')}",
           f"- command: `{d['command']}`",
           f"- {d['rounds']} interleaved round{'s' if d['rounds'] != 1 else ''} x {d['duration_s']:g} s per model, runtime and thread count; "
           "each cell is the median over rounds of that round's median (p99 likewise); batch 1"]
    limit = d.get("max_foreign_cpus")
    far_ns = d.get("far_ns") or FAR_RTT_NS
    if limit is not None:
        attempts = round_values(d["rows"], "_round_attempts")
        foreign = round_values(d["rows"], "_round_foreign_cpus")
        still = sum(1 for x in foreign if x > limit)
        out.append(f"- disturbance guard: a timing during which other processes and the hypervisor took more than "
                   f"{limit:g} CPUs on average was repeated (up to {d.get('retries')} times, the least disturbed "
                   f"attempt kept): {sum(1 for a in attempts if a > 1)} of {len(attempts)} model timings were "
                   f"repeated, {still} kept one still above the limit (its cells marked †); median of others' "
                   f"share over the kept timings {statistics.median(foreign) if foreign else 0:.3f} CPUs"
                   if attempts else "- disturbance guard: no per-timing record in this run")
        rtts = round_values(d["rows"], "_round_core_rtt_ns")
        if rtts:
            placed = timing_placements(d["rows"])
            far = sum(1 for x in placed if x > far_ns)
            line = (f"- the two CPUs of the multi-thread timings (`anvil_bench_runtime --core-rtt` before each"
                    f"{' and after' if any(k.endswith('_round_core_rtt_after_ns') for r in d['rows'] for k in r) else ''}: "
                    f"one cache line's round trip between two threads): median {statistics.median(rtts):.0f} ns, "
                    f"range {min(rtts):.0f}-{max(rtts):.0f} ns before the timings; ")
            if d.get("far_ns"):
                line += (f"a timing with the CPUs far apart (over {far_ns:g} ns) was repeated like a disturbed one "
                         f"and a near attempt kept where there was one: {far} of {len(placed)} kept timings still ran "
                         "far")
            else:
                line += f"{far} of {len(placed)} timings ran with the CPUs far apart (over {far_ns:g} ns)"
            out.append(line + ", where two-thread runs on these hosts are ~20% (Zen 1) to ~75% (Zen 4) slower")
    out += ["", "How each runtime is timed (bench/README.md has the details): anvil builds an engine per thread "
            "count with the CLI and a fresh `anvil_bench_runtime --latency` process times each "
            "`anvil_context_run` through the C API; onnxruntime (CPU EP, `intra_op_num_threads=N`, sequential, "
            "all graph optimizations, IOBinding) and OpenVINO (f32, `PERFORMANCE_HINT=LATENCY`, "
            "`INFERENCE_NUM_THREADS=N`, one stream) are timed call by call from Python. Equal threads, batch 1, "
            "same inputs; the order of the three rotates every round.",
            "",
            "The machine is shared: other engineers build and test on the same 2 cores while this runs, hence "
            "the load average above. Ratios within a round are more trustworthy than absolute times, and the "
            "2-thread rows least of all (a second thread competes with whatever else runs): compare.py repeats "
            "a timing that others disturbed or that ran with the CPUs far apart (the guards above); a cell "
            "marked † still holds a disturbed round, one marked ‡ ran far in at least half of its rounds; rerun on a quiet machine before reading a difference under ~15% as real."]
    if args.note:
        out += ["", args.note]
    geo = {}
    has = lambda key: any(r.get(key) is not None for r in d["rows"])
    avx2 = has("anvil_avx2_median_ms") and (has("ort_avx2_median_ms") or has("ov_avx2_median_ms"))
    for t in d["threads"]:
        table, g_ort, g_ov, worst = model_table(d["rows"], t, limit=limit, far_ns=far_ns)
        geo[t, ""] = (g_ort, g_ov, worst)
        out += ["", f"## {t} thread{'s' if t > 1 else ''}", "", table]
        if avx2:
            table, g_ort, g_ov, worst = model_table(d["rows"], t, "_avx2", limit=limit, far_ns=far_ns)
            geo[t, "_avx2"] = (g_ort, g_ov, worst)
            out += ["", f"### {t} thread{'s' if t > 1 else ''}, AVX2-only view of the CPU", "",
                    "All three runtimes on the kernels of an AVX2-only CPU (the reference machine of the CPU "
                    "issue), measured on this one: anvil with `ANVIL_MAX_ISA=avx2`, onnxruntime under the "
                    "`bench/cpuid_avx2.c` shim (CPUID reports no AVX-512, AVX-VNNI or AMX, so its kernel "
                    "dispatch picks AVX2), OpenVINO with `ONEDNN_MAX_CPU_ISA=AVX2`. Caches, clock and memory "
                    "are this machine's, not an AVX2 machine's.", "", table]
    fmt_g = lambda x: "n/a" if x is None or not math.isfinite(x) else f"{x:.2f}x"
    summary = []
    for (t, tag), (g_ort, g_ov, worst) in geo.items():
        view = "AVX2-only" if tag else "whole CPU"
        summary.append(f"{t} thread{'s' if t > 1 else ''}, {view}: {fmt_g(g_ort)} onnxruntime (slowest model "
                       f"{fmt_g(worst)}), {fmt_g(g_ov)} OpenVINO")
    out += ["", "Geometric mean of anvil's median latency over the other runtime's (below 1: anvil is faster): " +
            "; ".join(summary) + ".",
            "", f"![anvil and OpenVINO latency relative to onnxruntime]({os.path.basename(args.png)})"]
    if d.get("errors"):
        out += ["", "Cells left empty (the runtime could not prepare the model):", ""]
        out += [f"- {k}: `{e.strip().splitlines()[-1][:200] if e.strip() else e}`" for k, e in d["errors"].items()]

    if d.get("small"):
        out += ["", "## Small nets, per call, one thread", "",
                "anvil through its C API (`anvil_context_run` on bound buffers, in process); onnxruntime "
                "(`run_with_iobinding`) and OpenVINO (`infer()` on tensors set once) through their Python "
                "APIs, so their figures include a binding's fixed overhead of a few microseconds; PyTorch eager "
                "is the module the ONNX file was exported from, under `torch.no_grad()`, one thread.", "",
                "| model | anvil us | onnxruntime us | OpenVINO us | PyTorch eager us | anvil/onnxruntime | anvil/PyTorch |",
                "|---|---:|---:|---:|---:|---:|---:|"]
        for r in d["small"]:
            a = r.get("anvil_median_us")
            f = lambda k: "n/a" if r.get(k) is None else (f"{r[k]:.2f}" if r[k] < 10 else f"{r[k]:.1f}")
            out.append(f"| {r['model']} | {f('anvil_median_us')} | {f('ort_median_us')} | {f('ov_median_us')} | "
                       f"{f('torch_median_us')} | {fmt_ratio(ratio(a, r.get('ort_median_us')))} | "
                       f"{fmt_ratio(ratio(a, r.get('torch_median_us')))} |")

    roof = d.get("roofline")
    if roof:
        p = roof["peaks"]
        out += ["", "## GEMM roofline", "",
                "Measured single-core roofs (`anvil_bench_runtime --fma-peak`, best of 150 runs of ~3 ms in thread CPU time): "
                f"AVX2 FMA {p.get('avx2_fma_gflops') or 0:.1f} GFLOP/s, AVX-512 FMA "
                + (f"{p['avx512_fma_gflops']:.1f} GFLOP/s" if p.get("avx512_fma_gflops") else "not present")
                + f", triad bandwidth {p.get('triad_gbs', 0):.1f} GB/s.", "",
                "Every weight GEMM of the models above (MatMul/Gemm with a constant B; 1x1 convolutions with "
                "group 1 as M = output pixels, K = Cin, N = Cout) became a one-node MatMul model [M,K]x[K,N], "
                "built by the CLI at one thread and timed like the models. The intensity counts A, B and C once; "
                "the weights of a repeated call sit in L2/L3, so the bandwidth roof is a lower bound on what "
                "small GEMMs can reach.", "",
                f"![GEMM roofline]({os.path.basename(args.roofline)})", "",
                "| M | K | N | used by | anvil tactic | anvil GFLOP/s | onnxruntime GFLOP/s | anvil % of peak |",
                "|---:|---:|---:|---|---|---:|---:|---:|"]
        peak = p.get("avx512_fma_gflops") or p.get("avx2_fma_gflops")
        # The table lists the shapes where the zoo spends the most GEMM work (FLOPs x uses);
        # the plot and performance.json have them all.
        shown = sorted(roof["gemms"], key=lambda g: -g["flops"] * g["uses"])[:args.gemm_rows]
        out.insert(len(out) - 2, f"The {len(shown)} shapes with the most work (FLOPs x uses in the models) of "
                   f"{len(roof['gemms'])}; the plot and `{os.path.basename(args.raw)}` have all of them.")
        out.insert(len(out) - 2, "")
        for g in sorted(shown, key=lambda g: (g["M"], g["K"], g["N"])):
            ag = g.get("anvil_gflops")
            out.append(f"| {g['M']} | {g['K']} | {g['N']} | {', '.join(g['models'])} | "
                       f"{g.get('anvil_tactic', '?')} | "
                       f"{'n/a' if ag is None else f'{ag:.1f}'} | {g['ort_gflops']:.1f} | "
                       f"{'n/a' if ag is None or not peak else f'{100 * ag / peak:.0f}%'} |")
        roofline_plot(roof, args.roofline)
    out += ["", PERF_PER_WATT]
    bar_chart(d, args.png)
    if os.path.abspath(args.raw) != os.path.abspath(args.json):
        with open(args.raw, "w") as f:
            json.dump(d, f, indent=1)
            f.write("\n")
    os.makedirs(os.path.dirname(os.path.abspath(args.doc)), exist_ok=True)
    # Sections measured by other benchmarks (CUDA, the privacy modes) are written by hand
    # below KEEP_MARKER in the page; a rerun keeps them.
    if os.path.isfile(args.doc):
        with open(args.doc) as f:
            old = f.read()
        if KEEP_MARKER in old:
            out += ["", old[old.index(KEEP_MARKER):].rstrip("\n")]
    with open(args.doc, "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"wrote {args.doc}, {args.png}" + (f", {args.roofline}" if roof else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
