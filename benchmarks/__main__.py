"""Run every benchmark, write benchmarks/results/bench.json and bench.md, print the markdown.

    .venv/bin/python -m benchmarks            # what `make bench` runs
    .venv/bin/python -m benchmarks --quick    # smallest sizes, a smoke test: results/quick/
    .venv/bin/python -m benchmarks --docs     # also replace the table in docs/results.md
    .venv/bin/python -m benchmarks --only periods   # rerun one part, keep the others' results

Each benchmark runs in its own process (`python -m benchmarks.<name> --json ...`), so its peak
memory is its own and TensorFlow state never leaks between them: preprocess, train_speed,
score_speed, reconstruction (time to reconstruct and to accuracy), distributed_score, periods,
http_concurrency (see
each module's docstring). The default
survey they share is prepared once under $VARNET_BENCH_DIR (default /tmp/varnet-bench). The
real-survey tables (benchmarks.real_surveys, minutes to an hour each), the model's choice
among daily aliases (benchmarks.alias_choice, 6 min) and the injection and recovery of catalog
periods (benchmarks.period_injection, 3 min) are separate commands.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import common
from varnet import OFFLINE_ENV
from varnet.core import files

BENCHMARKS = ("preprocess", "train_speed", "score_speed", "reconstruction", "distributed_score",
              "periods", "http_concurrency")


def run_one(name: str, quick: bool, out: Path) -> None:
    """Run one part in its own process; its result, with the part's wall time, lands in ``out``."""
    command = [sys.executable, "-m", f"benchmarks.{name}", "--json", str(out)]
    if quick:
        command.append("--quick")
    started = time.perf_counter()
    print(f"[bench] {name} ...", flush=True)
    completed = subprocess.run(command, cwd=common.ROOT, env={**os.environ, **OFFLINE_ENV},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if completed.returncode != 0:
        tail = "\n".join(completed.stderr.strip().splitlines()[-15:])
        raise SystemExit(f"[bench] {name} failed (exit {completed.returncode}):\n{tail}")
    result = json.loads(out.read_text())
    result["wall_s"] = round(time.perf_counter() - started, 1)
    files.write_json(result, out)
    print(f"[bench] {name} done in {result['wall_s']:.0f} s", flush=True)


def read_parts(out_dir: Path) -> dict:
    """The last result of each part: its own ``<part>.json``, however it was run (here, by
    ``--only`` or alone as ``python -m benchmarks.<part> --json``)."""
    return {name: json.loads((out_dir / f"{name}.json").read_text())
            for name in BENCHMARKS if (out_dir / f"{name}.json").is_file()}


def _f(value, digits: int = 1) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def markdown(results: dict) -> str:
    machine = max((results[name]["machine"] for name in BENCHMARKS), key=lambda m: m["date"])
    def when(name: str) -> str:
        part = results[name]
        minutes = f", {part['wall_s'] / 60:.0f} min" if "wall_s" in part else ""
        return (f"{name} {part['machine']['date'][:16]} at {part['machine']['git_commit']} (load "
                f"{part['machine']['load_average'][0]} at its start{minutes})")

    runs = "; ".join(when(name) for name in BENCHMARKS)
    lines = [
        f"Measured {machine['date'][:10]} on {machine['cpu']}, {machine['cores']} cores, "
        f"{machine['memory_gib']} GiB, TensorFlow {machine['versions'].get('tensorflow')}, "
        f"by `python -m benchmarks` (each part also runs alone as `python -m "
        f"benchmarks.<part>`; `--only` reruns some and keeps the others). Parts, UTC, with the "
        f"commit each ran: {runs}. Load average: 2 = both cores busy.",
        "",
    ]
    pre = results["preprocess"]
    lines += ["**Preprocessing** (`python -m benchmarks.preprocess`): raw epochs through "
              "`apply_cuts` (clean, star cuts, supersmoother) and `build_sequences`.", "",
              "| stars | epochs | cuts s | sequences s | light curves/s | cuts only | "
              "sequences only | load |", "|---|---|---|---|---|---|---|---|"]
    for row in pre["sizes"]:
        lines.append(f"| {row['stars']:,} | {row['epochs']:,} | {_f(row['cuts_s'])} | "
                     f"{_f(row['sequences_s'], 2)} | **{_f(row['lightcurves_per_s'])}** | "
                     f"{_f(row['cuts_lightcurves_per_s'])} | "
                     f"{_f(row['sequences_lightcurves_per_s'])} | {row['load_before']} |")
    scaling = pre["scaling_exponent"]
    lines += ["", f"Time grows as stars^{scaling['cuts_s']} (cuts) and "
              f"stars^{scaling['sequences_s']} (sequences) from {pre['sizes'][0]['stars']:,} to "
              f"{pre['sizes'][-1]['stars']:,} stars (1 = linear).", ""]

    train = results["train_speed"]
    lines += ["**Training throughput** of the joint network (`python -m benchmarks.train_speed`): "
              "params.yaml's (default) and the paper's size, "
              f"T = {train['sequence_length']}; GFLOP from each network's GRU kernels "
              f"({train['flop_formula']}); matmul ceiling {train['ceiling_gflops']} GFLOP/s "
              f"(float32 2048², best of TF {train['ceiling_before']['tf_gflops']} / NumPy "
              f"{train['ceiling_before']['numpy_gflops']} before, "
              f"{train['ceiling_after']['tf_gflops']} / {train['ceiling_after']['numpy_gflops']}"
              f" after). Peak memory {train['peak_rss_mib']:.0f} MiB.", "",
              "| network | batch | MFLOP per sequence | sequences/s (fit) | fraction of "
              "ceiling | sequences/s (in-memory step) | fraction | first step s | load |",
              "|---|---|---|---|---|---|---|---|---|"]
    for row in train["batches"]:
        lines.append(f"| {row['network']} (GRU {row['gru_units']} x {row['gru_layers']}, m = "
                     f"{row['embedding']}) | {row['batch_size']} | "
                     f"{row['flop_per_sequence'] / 1e6:.1f} | "
                     f"**{_f(row['pipeline_sequences_per_s'])}** | "
                     f"**{row['pipeline_fraction_of_ceiling']:.1%}** | "
                     f"{_f(row['compute_sequences_per_s'])} | "
                     f"{row['compute_fraction_of_ceiling']:.1%} | {row['first_step_s']} | "
                     f"{row['load']} |")
    lines.append("")

    score = results["score_speed"]
    lines += ["**Scoring throughput**, end to end from raw light curves "
              "(`varnet.scoring.lightcurves.score_lightcurves`: clean, fold, network, GMM energy, "
              "per-star means; `python -m benchmarks.score_speed`). Ceiling "
              f"{score['ceiling_gflops']} GFLOP/s. "
              f"Peak memory {score['peak_rss_mib']:.0f} MiB.", "",
              "| model | stars | sequences | sequences/s | stars/s | preprocessing s | "
              "network s | network sequences/s | fraction of ceiling (end to end / network) | "
              "first call s | load |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in score["models"]:
        lines.append(f"| {row['model']} (GRU {row['gru_units']}) | {row['stars']:,} | "
                     f"{row['sequences']:,} | **{_f(row['sequences_per_s'])}** | "
                     f"{_f(row['stars_per_s'])} | {_f(row['preprocess_s'], 2)} | "
                     f"{_f(row['network_s'], 2)} | {_f(row['network_sequences_per_s'])} | "
                     f"{row['end_to_end_fraction_of_ceiling']:.1%} / "
                     f"{row['network_fraction_of_ceiling']:.1%} | {row['first_call_s']} | "
                     f"{row['load']} |")
    ls = score["lomb_scargle"]
    lines += ["", "Stars sent without a period: Lomb-Scargle (`varnet.prepare.periods`) alone runs "
              f"at {ls['stars_per_s']} stars/s ({ls['stars']} stars).", ""]

    rec = results["reconstruction"]
    ref, paper, cfg = rec["fourier_reference"], rec["paper"], rec["train"]
    lines += [f"**Time to reconstruct and to accuracy** on the default survey "
              f"(`{rec['command']}`, params.yaml as is: GRU {rec['model']['gru_units']}, batch "
              f"{cfg['batch_size']}, lr {cfg['learning_rate']:g} ({cfg['lr_schedule']}), "
              f"{cfg['epochs']} epochs of the autoencoder (joint: with the classifier), then "
              f"{cfg['estimation_epochs']} of the estimation network; "
              f"{rec['survey']['train_sequences']:,} training / "
              f"{rec['survey']['valid_sequences']:,} validation sequences, split by star). "
              f"R² reference: a {ref['harmonics']}-harmonic Fourier fit in phase per sequence, "
              f"median weighted R² {ref['median_valid_r2']:.3f} on validation and "
              f"{ref['median_test_r2']:.3f} on test; target 0.9 x that = "
              f"{rec['target_r2']['valid']:.3f} / {rec['target_r2']['test']:.3f}. Targets are "
              "read from the per-epoch validation figures; wall = the training epochs' time, "
              "the variant alone on the machine; the final columns are the test set.", "",
              "| variant | R² target at | wall | 95 % at | wall | 98 % at | wall | final R² "
              "(valid / test) | test accuracy | RF on the embedding (test) | novelty AUROC "
              "(test) | train s |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def at(reached: dict | None) -> str:
        if reached is None:
            return "not reached | —"
        return (f"epoch {reached['epoch_index']} ({reached['phase']}) | "
                f"**{reached['wall_s'] / 60:.1f} min**")

    for r in rec["runs"]:
        accuracy = r["accuracy_reached"]
        lines.append(f"| {r['variant']} | {at(r['reached'])} | {at(accuracy['0.95'])} | "
                     f"{at(accuracy['0.98'])} | {r['valid_recon_r2']:.3f} / "
                     f"**{r['test_recon_r2']:.3f}** | {r['test_accuracy']:.1%} | "
                     f"{r['rf_embedding_test_accuracy']:.1%} | {r['test_novelty_auroc']:.3f} | "
                     f"{r['total_s']:.0f} |")
    walls = paper.get("wall_h", {})
    lines += ["", f"Epoch indices are 0-based, as in the paper's log. The paper's released run "
              f"({paper['epochs']} epochs of batch {paper['batch_size']}, "
              f"{paper['train_sequences']:,} training sequences, split by sequence, GPU) first "
              "reached "
              + " and ".join(f"{float(t):.0%} at epoch {e}"
                             + (f" ({walls[t]:.1f} h)" if t in walls else "")
                             for t, e in paper["epoch_index"].items()) + ".", ""]
    lines += ["", *distributed_markdown(results["distributed_score"])]
    lines += periods_markdown(results["periods"])
    lines += http_markdown(results["http_concurrency"])
    return "\n".join(lines) + "\n"


def http_markdown(http: dict) -> list[str]:
    """The HTTP concurrency figure (also in docs/serving.md)."""
    return [f"**HTTP serving under concurrent clients** (`{http['command']}`): "
            f"{http['requests']} requests of {http['request']}, {http['client_workers']} client "
            f"threads at once, to {http['server']}.", "",
            "| requests | client workers | success | p50 s | p95 s | max s | requests/s | load |",
            "|---|---|---|---|---|---|---|---|",
            f"| {http['requests']} | {http['client_workers']} | {http['success_rate']:.0%} | "
            f"**{http['p50_s']}** | **{http['p95_s']}** | {http['max_s']} | "
            f"{http['requests_per_s']} | {http['load_before']} |", ""]


def periods_markdown(per: dict) -> list[str]:
    """The period-search table (also in docs/periods.md)."""
    lines = [f"**Periods of stars sent without one** (`{per['command']}`, "
             f"`varnet.prepare.periods`): catalog periods recovered within "
             f"{per['tolerance']:.0%} (P/2, 2P: within 1% of half or twice the catalog's; "
             "daily alias: within 1% of 1/(1/P ± k/sidereal day), k = 1, 2; "
             "eclipsing binaries: orbital periods), new path on every star, the replaced astropy "
             f"path on a subset; stars/s with {per['processes']} processes.", "",
             "| set | class | stars | recovered | P/2 | 2P | daily alias | other | "
             "astropy (subset) | new (same subset) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in per["sets"].items():
        old, new = r["subset"]["astropy"]["classes"], r["subset"]["new"]["classes"]
        for cls, row in sorted(r["new"]["classes"].items(), key=lambda c: (c[0] == "all", c[0])):
            if cls in old:
                o, n = old[cls], new[cls]
                sub = (f"{o['recovered']:.0%} of {o['stars']}", f"{n['recovered']:.0%}")
            else:
                sub = ("—", "—")
            lines.append(f"| {name} | {cls} | {row['stars']:,} | **{row['recovered']:.1%}** | "
                         f"{row['P/2']} | {row['2P']} | {row['daily alias']} | {row['other']} | "
                         f"{sub[0]} | {sub[1]} |")
    aliases = [f"{name} {a['alias_fits_better']} of {a['stars']} (median "
               f"{a['median_margin']})" for name, r in per["sets"].items()
               if (a := r["new"].get("daily_aliases", {}).get("all"))]
    if aliases:
        lines += ["", "Daily aliases that the light curve fits better than its catalog period "
                  "(the search's own offset-per-band + 4-harmonic fit, each period zoomed; "
                  "median chi²(catalog) − chi²(alias)): " + "; ".join(aliases)
                  + " (per class in periods.json)."]
    lines += ["", "| set | stars/s new | stars/s astropy | speed-up |", "|---|---|---|---|"]
    for name, r in per["sets"].items():
        old, new = r["subset"]["astropy"]["stars_per_s"], r["subset"]["new"]["stars_per_s"]
        lines.append(f"| {name} | {_f(r['new']['stars_per_s'])} | {_f(old, 2)} | "
                     f"{new / old:.0f}x |")
    for bands, z in per["ztf_like"].items():
        lines.append(f"| ZTF-like {bands} ({z['epochs']:,} epochs, {z['baseline_days']} d) | "
                     f"**{_f(z['stars_per_s'])}** ({_f(z['stars_per_s_one_process'])} in one "
                     f"process) | — | — |")
    pooled = per["pooled"]
    return [*lines, "", f"Pooled over the sets: RR Lyrae {pooled['rr_lyrae']['recovered']:.1%} "
            f"of {pooled['rr_lyrae']['stars']:,}, all stars {pooled['all']['recovered']:.1%} of "
            f"{pooled['all']['stars']:,}.", ""]


def distributed_markdown(dist: dict) -> list[str]:
    """The distributed-scoring table (also pasted into docs/scaling.md)."""
    model = dist["model"]
    lines = [f"**Distributed scoring** of a HATS catalog (`{dist['command']}`: `varnet "
             "hats-catalog`, then `varnet score CATALOG --workers N` on a fresh local Dask "
             f"cluster, one thread per worker; GRU {model['gru_units']} x {model['gru_layers']}"
             "). Stars/s of the whole job after each worker loaded the model (warm-up apart); "
             "peak memory of each worker process; busy = CPU s / job s of each worker and of "
             "the client (below 1: waiting for a core or for work).", "",
             "| periods | stars | partitions | pair | workers | job s | stars/s | per core | "
             "warm-up s | peak MiB per worker | busy (workers; client) | load |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in dist["runs"]:
        peaks = " / ".join(str(v) for v in r["worker_peak_rss_mib"])
        busy = " / ".join(f"{v:.2f}" for v in r["worker_busy"]) + f"; {r['client_busy']:.2f}"
        lines.append(f"| {r['periods']} | {r['stars']:,} | {r['partitions']} | "
                     f"{r['pair']} | {r['workers']} | "
                     f"{_f(r['seconds'], 1)} | **{_f(r['stars_per_s'])}** | "
                     f"{_f(r['stars_per_s'] / r['workers'])} | {r['warmup_s']} | {peaks} | "
                     f"{busy} | {r['load_before']} |")
    pairs = dist["speedup_pairs"]
    speedups = ", ".join(f"{k}: **{v}x**" + (f" (median of {', '.join(map(str, pairs[k]))})"
                                             if len(pairs[k]) > 1 else "")
                         for k, v in dist["speedup_2_vs_1"].items())
    same = "; ".join(f"{k}: {c['rows']:,} rows, "
                     + (f"equal to {c['rtol']:g} of each value" if c["identical"] else "DIFFERENT")
                     + f" (largest difference {c['max_rel_float_diff']:.1e} of"
                     f" a value, {c['max_abs_float_diff']:.1e} absolute)"
                     for k, c in dist["identical_to_local"].items())
    return [*lines, "", f"2 workers / 1 worker: {speedups}. Against the single-process "
            f"`varnet score` of the same light curves: {same}.", ""]


def update_docs(text: str, path: Path = common.ROOT / "docs" / "results.md") -> None:
    begin, end = "<!-- BEGIN bench -->", "<!-- END bench -->"
    current = path.read_text()
    if begin not in current or end not in current:
        raise SystemExit(f"{path}: markers {begin} / {end} not found")
    head, rest = current.split(begin, 1)
    path.write_text(head + begin + "\n" + text + end + rest.split(end, 1)[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smallest sizes (a smoke test)")
    parser.add_argument("--docs", action="store_true",
                        help="replace the benchmark section of docs/results.md")
    parser.add_argument("--only", nargs="*", choices=BENCHMARKS, default=list(BENCHMARKS),
                        help="run these; the others are read from their last "
                             "results/<part>.json (--only with no name re-renders bench.md)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    # a smoke test must not overwrite the measured results (quick/ is git-ignored)
    out_dir = common.RESULTS_DIR / "quick" if args.quick else common.RESULTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.only:  # a run; with no names, only a re-render of what the parts measured
        print("[bench] preparing the default survey ...", flush=True)
        common.default_survey()
        for name in args.only:
            run_one(name, args.quick, out_dir / f"{name}.json")
    results = read_parts(out_dir)
    missing = [n for n in BENCHMARKS if n not in results]
    if missing:
        raise SystemExit(f"[bench] no results for {missing}: run them (drop --only)")
    if args.only:
        results["command"] = ("python -m benchmarks" + (" --quick" if args.quick else "")
                              + ("" if len(args.only) == len(BENCHMARKS)
                                 else " --only " + " ".join(args.only)))
        results["total_s"] = round(time.perf_counter() - started, 1)
        files.write_json(results, out_dir / "bench.json")
    text = markdown(results)
    (out_dir / "bench.md").write_text(text)
    if args.docs:
        update_docs(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
