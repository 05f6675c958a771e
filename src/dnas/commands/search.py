"""``dnas search``: a cell search (bilevel gradient) or, with ``--space nb201`` and a discrete
``--strategy``, a search over a tabular benchmark."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from dnas.cli import app
from dnas.commands.common import emit_json, say, show_progress


@app.command()
def search(
    preset: Optional[str] = typer.Option(None, help="darts | pc-darts | gdas | quick (the default built-in search) | hdas-stage | hdas-cell | hdas | drnas | snas | fairdarts | beta-darts | darts-minus | sdarts-rs | sdarts-adv | spos | rsps | proxyless | darts-pt"),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file of config fields"),
    data: Optional[str] = typer.Option(None, help="built-in name (mnist, digits) or a path (image folder, .npz, CIFAR batches)"),
    epochs: Optional[int] = typer.Option(None, min=1),
    seed: Optional[int] = typer.Option(None),
    out: Optional[Path] = typer.Option(None, help="run directory (default runs/search-<time>)"),
    resume: Optional[Path] = typer.Option(None, help="continue the run in this directory"),
    relaxation: Optional[str] = typer.Option(None, help="how edges mix ops: darts (softmax) | pc (partial channel) | gdas (one Gumbel-sampled path) | msg (K sampled sub-graphs) | topo (topology variables) | drnas | snas | fairdarts | beta-darts | darts-minus | sdarts-rs | sdarts-adv | spos | proxyless"),
    selection: Optional[str] = typer.Option(None, "--selection", help="how the genotype is chosen from the trained supernet: argmax | darts-pt (perturbation) | evolution | random (score archs in the supernet; spos default: evolution)"),
    guard: Optional[str] = typer.Option(None, "--guard", help="collapse guard: off | log (default: per-epoch Hessian eigenvalue, parameter-free share) | stop (also stop early on collapse)"),
    unrolled: Optional[bool] = typer.Option(None, "--unrolled/--first-order", help="second- or first-order architecture gradient"),
    hvp: Optional[str] = typer.Option(None, "--hvp", help="with --unrolled: finite-difference (DARTS reference, R = 0.01/||v||) | exact (double backward)"),
    warmup_epochs: Optional[int] = typer.Option(None, min=0, help="epochs of weight training before architecture steps"),
    arch_lr: Optional[float] = typer.Option(None, "--arch-lr", help="Adam learning rate of the architecture parameters"),
    batch_size: Optional[int] = typer.Option(None, min=1),
    init_channels: Optional[int] = typer.Option(None, min=2),
    layers: Optional[int] = typer.Option(None, min=1),
    image_size: Optional[int] = typer.Option(None, min=4),
    max_samples: Optional[int] = typer.Option(None, min=10),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda[:N]"),
    threads: Optional[int] = typer.Option(None, min=1, help="torch CPU threads (1 is best on a busy machine)"),
    fast: Optional[bool] = typer.Option(None, "--fast/--plain", help="fused edge path (DARTS: about 0.7x peak memory and faster, see README) or the plain op-by-op path (default)"),
    channels_last: Optional[bool] = typer.Option(None, "--channels-last/--nchw", help="run the supernet in channels_last (faster on CPU; with --fast the quickest DARTS setting measured)"),
    space: str = typer.Option("darts", help="darts | nb201 | hierarchical | fbnetv2 | generalized | network | any registered space (python -m dnas.matrix lists what runs where)"),
    cell: Optional[str] = typer.Option(None, "--cell", help="hdas-stage: the fixed cell, a published name (DARTS_V2) or a genotype JSON file"),
    strategy: Optional[str] = typer.Option(None, help="bilevel (gradient, spaces with a supernet) | random | evolution | local-search | bohb | bohb-gcn | nsga2 | ... (any space, with --evaluator) | bohb-alt (generalized)"),
    evaluator: Optional[str] = typer.Option(None, help="for discrete strategies: tabular:FILE | train:EPOCHS | ws:EPOCHS (or ws:run=DIR) | predictor:RECORDS"),
    budget: Optional[int] = typer.Option(None, min=1, help="for discrete strategies: number of queries"),
    strategy_opt: Optional[list[str]] = typer.Option(None, "--strategy-opt", help="KEY=VALUE option of a discrete strategy (repeatable), e.g. warm_start=zc:synflow,table=nb201_cifar10_zc"),
    objectives: Optional[str] = typer.Option(None, "--objectives", help="discrete strategies: minimise these, e.g. error,params (or macs, latency); reports the front and its hypervolume"),
    min_budget: Optional[float] = typer.Option(None, help="bohb: smallest budget (epochs)"),
    max_budget: Optional[float] = typer.Option(None, help="bohb: largest budget (epochs)"),
    eta: Optional[float] = typer.Option(None, help="bohb: successive-halving rate (default 3)"),
    workers: int = typer.Option(0, min=0, help="run trials as Ray tasks on this many local CPUs (0: serial)"),
    ray_address: Optional[str] = typer.Option(None, help="run trials on an existing Ray cluster"),
    cost: Optional[str] = typer.Option(None, "--cost", help="cost term: params | macs | latency (per-op table measured here) | latency_predictor (needs --latency-predictor)"),
    cost_lambda: Optional[float] = typer.Option(None, "--cost-lambda", min=0, help="weight of the cost term (per M params, M MACs or ms)"),
    max_latency_ms: Optional[float] = typer.Option(None, "--max-latency-ms", help="penalise only expected latency above this budget"),
    latency_predictor: Optional[str] = typer.Option(None, "--latency-predictor", help="predictor file from 'dnas latency fit' (implies --cost latency_predictor)"),
    nproc: Optional[int] = typer.Option(None, "--nproc", min=1, help="data-parallel ranks on this machine (torch.distributed, gloo on CPU / nccl on GPU); --batch-size stays the global batch"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress output"),
) -> None:
    """Search an architecture and write a run directory with genotype.json."""
    bohb = {k: v for k, v in dict(min_budget=min_budget, max_budget=max_budget, eta=eta).items() if v is not None}
    if resume is not None and out is not None:
        from dnas.errors import ConfigError

        raise ConfigError("--out: --resume continues the run in its own directory; drop --out")
    if resume is not None and space != "darts" and space != _saved_space(resume):
        from dnas.errors import ConfigError

        raise ConfigError(f"--space: --resume continues the run with its saved space ({_saved_space(resume) or 'darts'}); drop --space {space}")
    if resume is not None and _saved_kind(resume) == "discrete":
        given = [f for f, v in (("--strategy", strategy), ("--evaluator", evaluator), ("--seed", seed), ("--min-budget", min_budget),
                                ("--max-budget", max_budget), ("--eta", eta), ("--config", config), ("--data", data)) if v is not None]
        if given:
            from dnas.errors import ConfigError

            raise ConfigError(f"{given[0]}: --resume continues a search with its saved settings; drop {given[0]} (only --budget may grow)")
        from dnas.strategies.discrete import resume_discrete_search

        _print_discrete(resume_discrete_search(resume, budget=budget), resume, as_json, quiet)
        return
    if resume is not None and _saved_space(resume) == "generalized":
        from dnas.strategies.alternating import resume_generalized

        _print_generalized(resume_generalized(resume, budget=budget, workers=workers, ray_address=ray_address), as_json, quiet)
        return
    if _is_alternating(space, strategy, evaluator):
        from dnas.strategies.alternating import search_generalized

        result = search_generalized(data or "digits", budget=budget or 60, seed=seed or 0, out=out,
                                    workers=workers, ray_address=ray_address, max_train_samples=max_samples, **bohb)
        _print_generalized(result, as_json, quiet)
        return
    if _is_discrete(space, strategy, evaluator, relaxation):
        if workers or ray_address:
            bohb.update(executor="ray", workers=workers, ray_address=ray_address)
        data_opts = dict(data=data, max_samples=max_samples, image_size=image_size)
        _discrete(space, strategy, evaluator, budget, seed, out, as_json, quiet, data_opts, objectives=objectives, **bohb,
                  **_strategy_opts(strategy_opt))
        return
    from dnas.matrix import check

    check(space, strategy or "bilevel", None)
    import dnas.api as api

    overrides = dict(
        data=data, epochs=epochs, seed=seed, relaxation=relaxation, selection=selection, guard=guard, unrolled=unrolled, hvp=hvp, warmup_epochs=warmup_epochs, arch_lr=arch_lr, batch_size=batch_size,
        init_channels=init_channels, layers=layers, image_size=image_size, max_samples=max_samples, device=device, threads=threads, fast=fast,
        channels_last=channels_last,
        strategy=strategy, cell=cell, space=space if space != "darts" else None,
        cost_objective=_cost_objective(cost, latency_predictor), cost_lambda=cost_lambda, max_latency_ms=max_latency_ms,
        latency_predictor=latency_predictor,
    )
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if nproc is not None:
        overrides["nproc"] = nproc
    from dnas import distributed

    if distributed.launched() and out is None and resume is None:
        from dnas.errors import ConfigError

        raise ConfigError("--out: required under torchrun, so that every rank uses the same run directory")
    result = api.search(config, preset=preset, out=out, resume=resume, progress=show_progress(quiet, as_json), **overrides)
    if distributed.launched() and os.environ.get("RANK", "0") != "0":
        return  # rank 0 reports
    if as_json:
        emit_json({"genotype": result.genotype.to_dict(), "run_dir": str(result.run_dir),
                   "val_acc": result.history[-1]["val_acc"] if result.history else None})
        return
    if result.already_finished:
        say(quiet, f"run {result.run_dir} had already finished; nothing changed")
    say(quiet, search_summary(result))
    verdict = _decision_of(result)
    if verdict and verdict.get("decided") is False:
        from dnas.decision import undecided_warning

        typer.echo(undecided_warning(verdict), err=True)
    if quiet:
        typer.echo(result.genotype.to_json(indent=None))


def _is_discrete(space: str, strategy: Optional[str], evaluator: Optional[str], relaxation: Optional[str]) -> bool:
    """A black-box search (a discrete strategy scoring whole architectures with an evaluator)
    rather than a bilevel supernet search: a discrete --strategy or an --evaluator was named,
    or the space has no supernet."""
    from dnas.spaces.base import get_space

    if strategy not in (None, "bilevel") or evaluator is not None:
        return True
    if relaxation is not None or strategy == "bilevel":
        return False
    return not get_space(space).relaxations


def _is_alternating(space: str, strategy: Optional[str], evaluator: Optional[str]) -> bool:
    """The two alternating BOHBs: the default search of a space that splits into structure and
    operators (the generalized space), unless another strategy or an evaluator is named."""
    from dnas.spaces.base import get_space

    if strategy == "bohb-alt":
        from dnas.matrix import check

        check(space, strategy, evaluator)
        return True
    return strategy is None and evaluator is None and get_space(space).alternating


def _saved(run_dir: Path) -> dict:
    """The saved config of a run, best effort (only to route --resume; the resuming code reads
    and verifies it properly and reports what is wrong with it)."""
    from dnas.errors import DnasError
    from dnas.io import loads_yaml, read_text

    cfg = Path(run_dir) / "config.yaml"
    try:
        d = loads_yaml(read_text(cfg, "config"), str(cfg)) if cfg.is_file() else None
    except DnasError:
        return {}
    return d if isinstance(d, dict) else {}


def _saved_space(run_dir: Path) -> str | None:
    return _saved(run_dir).get("space")


def _saved_kind(run_dir: Path) -> str | None:
    return _saved(run_dir).get("kind")


def _print_generalized(result, as_json: bool, quiet: bool) -> None:
    d = result.to_dict()
    if as_json:
        emit_json(d)
        return
    say(quiet, f"best structure: {d['structure']}")
    say(quiet, f"best operators: {d['operators']}")
    say(quiet, f"accuracy {d['accuracy']:.4f} after {d['evaluations']} evaluations; run directory: {d['run_dir']}")


def _strategy_opts(items: Optional[list[str]]) -> dict:
    """``["k=10", "warm_start=zc:synflow"]`` -> ``{"k": 10, "warm_start": "zc:synflow"}``."""
    from dnas.errors import ConfigError

    out: dict = {}
    for item in items or []:
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--strategy-opt: expected KEY=VALUE, got {item!r}")
        for cast in (int, float):
            try:
                out[key] = cast(val)
                break
            except ValueError:
                continue
        else:
            out[key] = val
    return out


def _cost_objective(cost: Optional[str], predictor: Optional[str]) -> Optional[str]:
    """``--cost latency`` is the per-op table; a predictor file implies the predictor."""
    if cost is None:
        return "latency_predictor" if predictor else None
    if cost == "latency":
        return "latency_predictor" if predictor else "latency_table"
    return cost


def _discrete(space, strategy, evaluator, budget, seed, out, as_json, quiet, data_opts, **options) -> None:
    from dnas.evaluators.base import complete_spec, evaluator_kind
    from dnas.matrix import check
    from dnas.strategies.discrete import run_discrete_search

    strategy = strategy or "random"
    check(space, strategy, evaluator)
    # the saved spec carries --data/--seed, so it alone rebuilds the same evaluator on --resume
    evaluator = complete_spec(evaluator, seed=seed, **data_opts)
    if strategy.startswith("bohb") and "min_budget" not in options and evaluator_kind(evaluator) == "train":
        epochs = _train_epochs(evaluator)
        if epochs > 1:  # budget = epochs: Hyperband's rungs from 1 to EPOCHS epochs
            options.update(min_budget=1.0, max_budget=float(epochs))
    result = run_discrete_search(
        space=space, strategy=strategy, evaluator=evaluator, budget=budget or 100,
        seed=seed or 0, out_dir=out, **options,
    )
    _print_discrete(result, out, as_json, quiet)


def _print_discrete(result: dict, out, as_json: bool, quiet: bool) -> None:
    keys = ("best_arch", "best_accuracy", "queries", "objectives", "hypervolume", "hv_reference", "hv_reference_from")
    if as_json:
        emit_json({k: result[k] for k in keys if k in result} | ({"front_size": len(result["front"])} if "front" in result else {})
                  | {k: result.get(k) for k in ("space", "strategy", "evaluator")} | {"run_dir": str(out) if out else None})
        return
    if result.get("already_finished"):
        say(quiet, f"run {out} had already finished; nothing changed (pass a larger --budget to extend it)")
    say(quiet, f"best architecture: {result['best_arch']}")
    say(quiet, f"best accuracy: {result['best_accuracy']:.2f}  after {result['queries']} queries")
    if "hypervolume" in result:
        say(quiet, f"front: {len(result['front'])} architectures over {','.join(result['objectives'])}; "
                   f"hypervolume {result['hypervolume']:.4f} (normalised, reference from the {result['hv_reference_from']})")
    if out:
        say(quiet, f"run directory: {out}")


def _train_epochs(spec: str) -> int:
    first = spec.partition(":")[2].split(",")[0]
    return int(first) if first.strip().isdigit() else 1


def search_summary(result) -> str:
    """The end-of-search summary: what ran, where the run directory is, the genotype, and the
    commands to run next (train it, report on it, watch it in TensorBoard)."""
    hist, g, run = result.history, result.genotype, Path(result.run_dir)
    final = hist[-1] if hist else {}
    secs = sum(h.get("seconds", 0.0) for h in hist)
    head = f"search finished: {len(hist)} epoch(s) in {secs:.1f} s"
    if final.get("val_acc") is not None:
        head += f", final val acc {final['val_acc']:.4f}"
    if final.get("world_size"):
        head += f", {final['world_size']} ranks"
    lines = [head]
    stop = g.meta.get("guard_stop")
    if stop:
        lines.append(f"collapse guard stopped the search: {stop.get('reason')} (kept epoch {int(stop.get('chosen_epoch', 0)) + 1})")
    lines.extend(_margin_lines(_decision_of(result)))
    lines.append(f"genotype {g.hash()}")
    if not hasattr(g, "normal"):  # no DARTS cells (fbnetv2: channels and a resolution; nb201: one cell string)
        lines.append(f"  {g}")
    else:
        lines.append("  normal: " + ", ".join(f"{o}<-{i}" for o, i in g.normal) + f"  concat {list(g.normal_concat)}")
        lines.append("  reduce: " + ", ".join(f"{o}<-{i}" for o, i in g.reduce) + f"  concat {list(g.reduce_concat)}")
    files = [n for n in ("genotype.json", "events.jsonl", "checkpoint.pt", "result.json", "config.yaml", "tb") if (run / n).exists()]
    lines.append(f"run directory: {run}  ({', '.join(files)})")
    lines.append("next:")
    lines.append(f"  dnas train {run / 'genotype.json'} --data {g.meta.get('data', 'mnist')}")
    lines.append(f"  dnas report {run}")
    if (run / "tb").exists():
        lines.append(f"  tensorboard --logdir {run}")
    return "\n".join(lines)


def _decision_of(result) -> dict | None:
    """The search's verdict (:mod:`dnas.decision`): on the result, else in its result.json."""
    verdict = getattr(result, "decision", None)
    if verdict is None:
        import json

        path = Path(result.run_dir) / "result.json"
        try:
            verdict = json.loads(path.read_text()).get("decision") if path.exists() else None
        except (OSError, ValueError):
            verdict = None
    return verdict


def _margin_lines(verdict: dict | None) -> list[str]:
    """Mean top-1 against uniform, and per edge ``top-1/margin`` of the softmaxed op weights."""
    if not verdict or not verdict.get("choices"):
        return []
    word = "decided" if verdict["decided"] else "NOT decided"
    lines = [f"architecture weights: mean top-1 {verdict['mean_top1']:.3f} = {verdict['top1_ratio']:.2f}x uniform "
             f"({verdict['uniform']:.3f}); mean margin {verdict['mean_margin']:.3f}, min {verdict['min_margin']:.3f} "
             f"({word}: threshold {verdict['threshold']})"]
    for group, rows in verdict.get("edges", {}).items():
        lines.append(f"  {group} top-1/margin per edge: " + " ".join(f"{t:.2f}/{m:.2f}" for t, m in rows))
    return lines
