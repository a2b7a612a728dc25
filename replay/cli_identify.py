"""``fingergym identify BAG_OR_DIR... -o identified.yaml``: fit the scenario's physics to logged
episodes (:mod:`fingergym.replay.identify`), write the identified scenario and a report.

Outputs: ``identified.yaml`` (a complete scenario: the fitted values as nominal, their
randomization ranges narrowed; ``train``/``eval``/``replay --scenario`` read it),
``identified_report.md`` (table: prior vs fitted +- std, what is not identifiable, replay
divergence per episode before/after, held-out episodes marked) and ``identified_report.png``.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from fingergym.scenario import ScenarioError, load_scenario

from .reader import BagError, read_episode


def _delays(text: str) -> list[int]:
    lo, sep, hi = text.partition(":")
    try:
        out = list(range(int(lo), int(hi) + 1)) if sep else [int(lo)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO:HI control periods, got {text!r}") from None
    if not out or out[0] < 0:
        raise argparse.ArgumentTypeError(f"expected 0 <= LO <= HI, got {text!r}")
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bags", type=Path, nargs="+", metavar="BAG_OR_DIR",
                        help="logged episodes: bag directories, or directories searched for bags")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="IDENTIFIED.yaml",
                        help="the identified scenario to write (report and plot go beside it)")
    parser.add_argument("--params", default=None,
                        help="comma-separated parameters to fit (default: what training "
                             "randomizes: friction, gain_scale, action_delay_periods and the "
                             "task's scaled ones, e.g. box_mass); also kp, kd")
    parser.add_argument("--scenario", type=Path, default=None,
                        help="prior scenario YAML (default: the one logged in the first bag)")
    parser.add_argument("--holdout", type=int, default=None,
                        help="episodes held out of the fit, the last ones (default: a third, "
                             "at least 1 when there are 2 or more)")
    parser.add_argument("--delays", type=_delays, default=[0, 1, 2, 3], metavar="LO:HI",
                        help="command delays profiled, control periods (default 0:3)")
    parser.add_argument("--horizon", type=float, default=1.5, metavar="SECONDS",
                        help="fit on each episode's first SECONDS first, then on the whole "
                             "(default 1.5; 0: whole episodes only)")
    parser.add_argument("--fit-seconds", type=float, default=3.0, metavar="SECONDS",
                        help="fit, and measure the replay divergence, on each episode's first "
                             "SECONDS (default 3; 0: whole episodes): open-loop replay through "
                             "contact is chaotic on long episodes")
    parser.add_argument("--max-nfev", type=int, default=30,
                        help="least-squares evaluations per delay (default 30)")


def run(args: argparse.Namespace) -> int:
    from fingergym.files import check_output_file

    from .episodes import find_bags
    from .identify import DELAY, default_params, fit, identified_scenario, max_divergence

    try:
        check_output_file(args.output, "the identified scenario", (".yaml", ".yml"))
        paths = []
        for p in args.bags:
            if not p.exists():
                raise BagError(f"{p}: no such bag or directory")
            paths += find_bags(p) if p.is_dir() else [p]
        if not paths:
            raise BagError("no bags (*.mcap) under " + ", ".join(map(str, args.bags)))
        eps = [read_episode(p) for p in paths]
        bad = [e for e in eps if e.damaged or e.steps == 0]
        if bad:
            raise BagError(f"{bad[0].path}: damaged or empty bag; leave it out")
        prior = load_scenario(args.scenario) if args.scenario else eps[0].scenario
        names = (default_params(prior) if args.params is None
                 else [n.strip() for n in args.params.split(",") if n.strip()])
        n_hold = args.holdout if args.holdout is not None else (len(eps) // 3 if len(eps) > 2
                                                                 else len(eps) - 1)
        if not 0 <= n_hold < len(eps):
            raise ValueError(f"--holdout {n_hold}: must leave at least one of the "
                             f"{len(eps)} episode(s) to fit")
        fit_eps, held = eps[:len(eps) - n_hold], eps[len(eps) - n_hold:]
        from tqdm import tqdm

        print(f"fitting {', '.join(names)} to {len(fit_eps)} episode(s) "
              f"({sum(e.steps for e in fit_eps)} steps); {len(held)} held out", flush=True)
        with tqdm(desc="re-simulations", unit="fit eval", file=sys.stderr) as bar:
            f = fit(fit_eps, prior, names, delays=args.delays, max_nfev=args.max_nfev,
                    horizon=args.horizon or None, fit_seconds=args.fit_seconds or None,
                    progress=bar)
        rows = []
        for e in eps:
            window = _window(e, prior, args.fit_seconds)
            before = max_divergence(window, prior, {})
            after = max_divergence(window, prior, f.value)
            rows.append((e, e in held, before, after))
    except (BagError, ValueError, ScenarioError, OSError) as e:
        print(f"fingergym identify: {e}", file=sys.stderr)
        return 2
    ident = identified_scenario(prior, f)
    report = format_report(f, rows, paths=[str(e.path) for e in eps], delay_name=DELAY)
    print(report)
    out = args.output
    out.parent.mkdir(parents=True, exist_ok=True)
    write_scenario(ident, out, f)
    md = out.with_name(out.stem + "_report.md")
    md.write_text(report + "\n")
    png = plot_fit(f, rows, out.with_name(out.stem + "_report.png"))
    print(f"wrote {out}, {md}, {png}")
    return 0


def _window(e, scenario, seconds: float | None):
    """``e`` as a robot bag, cut to its first ``seconds`` (``None``/0: whole)."""
    from .identify import as_robot_bag, head

    e = as_robot_bag(e)
    return head(e, max(1, round(seconds / scenario.episode.step))) if seconds else e


def _fmt(v: float) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:.4g}"


def format_report(f, rows, *, paths: list[str], delay_name: str) -> str:
    """Markdown: parameter table, identifiability, per-episode divergence before/after."""
    lines = ["| parameter | prior | fitted | std | identified |", "|---|---:|---:|---:|---|"]
    for n in f.value:
        ok = f.identifiable.get(n, False)
        lines.append(f"| {n} | {_fmt(f.prior[n])} | {_fmt(f.value[n])} | "
                     f"{_fmt(f.std.get(n, float('nan')))} | {'yes' if ok else 'NO: ' + f.why[n]} |")
    lines.append("")
    lines.append(f"cost {f.cost_prior:.4g} (prior) -> {f.cost:.4g} (fitted); residual rms "
                 f"{f.residual_rms:.3g} (units: 1 mm / 1 deg); {f.nfev} re-simulations")
    if f.delay_profile:
        lines.append(f"{delay_name} cost profile: " + ", ".join(
            f"{d}: {c:.4g}" for d, c in sorted(f.delay_profile.items())))
    if f.singular_values:
        lines.append("singular values of the scaled Jacobian: "
                     + ", ".join(f"{v:.3g}" for v in f.singular_values))
    lines += ["", "max replay divergence per episode (over the fitted window), prior -> fitted "
                  "(mm / deg):", ""]
    names = list(rows[0][2]) if rows else []
    lines.append("| episode | set | " + " | ".join(names) + " |")
    lines.append("|---|---|" + "---:|" * len(names))
    for e, held, before, after in rows:
        cells = [f"{_scaled(k, before[k])} -> {_scaled(k, after[k])}" for k in names]
        lines.append(f"| {Path(str(e.path)).name} | {'held out' if held else 'fit'} | "
                     + " | ".join(cells) + " |")
    for label, want in (("fit", False), ("held-out", True)):
        sel = [(b, a) for _, h, b, a in rows if h == want]
        if sel and names:
            k = names[0]
            mb = sum(b[k] for b, _ in sel) / len(sel)
            ma = sum(a[k] for _, a in sel) / len(sel)
            ratio = mb / ma if ma > 0 else float("inf")
            lines.append(f"{label} episodes ({len(sel)}): mean max {k} {_scaled(k, mb)} -> "
                         f"{_scaled(k, ma)} ({ratio:.3g}x smaller)")
    return "\n".join(lines)


def _scaled(name: str, v: float) -> str:
    return f"{math.degrees(v):.2f}" if name.endswith("_theta") else f"{1e3 * v:.2f}"


def write_scenario(scenario, path: Path, f) -> None:
    """The identified scenario as a complete scenario YAML, the fit summarized on top."""
    import yaml

    from fingergym.scenario import to_dict

    head = ["# fingergym scenario identified from logged episodes (fingergym identify):"]
    for n in f.value:
        sd = f.std.get(n, float("nan"))
        state = ("identified" if f.identifiable.get(n)
                 else f"NOT identified ({f.why[n]}), prior kept")
        head.append(f"#   {n}: prior {_fmt(f.prior[n])}, fitted {_fmt(f.value[n])} +- {_fmt(sd)}"
                    f" -> {state}")
    head.append("# An identified command delay is in randomization.action_delay_periods;")
    head.append("# a robot bag's replay takes it with --param action_delay_periods=N.")
    body = yaml.safe_dump(to_dict(scenario), sort_keys=False, default_flow_style=None)
    path.write_text("\n".join(head) + "\n" + body)


def plot_fit(f, rows, path: Path) -> Path:
    """Left: fitted / prior +- std per parameter; right: max divergence per episode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    names = list(f.value)
    ratio = [f.value[n] / f.prior[n] if f.prior[n] else f.value[n] for n in names]
    err = [(f.std.get(n, 0) / f.prior[n]) if f.prior[n] and math.isfinite(f.std.get(n, 0))
           else 0 for n in names]
    colors = ["tab:blue" if f.identifiable.get(n) else "tab:gray" for n in names]
    a.bar(range(len(names)), ratio, yerr=err, color=colors, capsize=4)
    a.axhline(1.0, color="k", lw=0.8)
    a.set_xticks(range(len(names)), names, rotation=20)
    a.set_ylabel("fitted / prior (delay: periods)")
    a.set_title("identified parameters (gray: not identifiable)")
    if rows:
        k = list(rows[0][2])[0]
        x = np.arange(len(rows))
        a_b = [1e3 * r[2][k] for r in rows]
        a_a = [1e3 * r[3][k] for r in rows]
        b.bar(x - 0.2, a_b, 0.4, label="prior")
        b.bar(x + 0.2, a_a, 0.4, label="fitted")
        b.set_xticks(x, [("H" if r[1] else "F") + str(i) for i, r in enumerate(rows)])
        b.set_ylabel(f"max {k} divergence [mm]")
        b.set_title("replay divergence (F: fit, H: held out)")
        b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
