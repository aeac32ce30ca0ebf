"""The ``varnet`` command: one subcommand per DVC stage, plus tune/promote/score.

Only the chosen subcommand's module is imported, so ``varnet --help`` and the data stages do
not pay for importing TensorFlow. Each command module defines ``add_arguments(parser)`` and
``run(args, params) -> int | None``; its docstring is the command's ``--help`` text.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from varnet.core.config import load_params
from varnet.core.errors import VarnetError

COMMANDS: dict[str, tuple[str, str]] = {
    "snapshot": ("varnet.surveys.snapshot", "write a survey snapshot to data/raw/<name>/"),
    "validate": ("varnet.prepare.validate",
                 "apply the paper's cuts, validate with Great Expectations"),
    "sequences": ("varnet.prepare.sequences",
                  "cut light curves into folded, normalised n-point sequences"),
    "split": ("varnet.prepare.split", "split sequences into train/valid (grouped by star or not)"),
    "train": ("varnet.training.train", "train a joint or sequential network, log it to MLflow"),
    "evaluate": ("varnet.evaluation.evaluate",
                 "metrics, figures and Table 2 from the trained variants"),
    "baseline": ("varnet.evaluation.baseline", "random-forest baseline on the learned embeddings"),
    "sweep": ("varnet.evaluation.sweep", "summarise an embedding-size sweep of DVC experiments"),
    "tune": ("varnet.training.tune", "Optuna study over lambda and the embedding size"),
    "promote": ("varnet.serving.promote", "move the champion alias to a better registered version"),
    "score": ("varnet.serving.score",
              "classify light curves and flag novel stars with a registered model"),
    "hats-catalog": ("varnet.serving.catalog",
                     "write light curves as a HATS catalog, for `varnet score` on Dask"),
}
"""Subcommand -> (module, summary). The module is imported only when its command runs."""


def build_parser(command: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="varnet",
        description="Classify periodic variable stars and flag novel variability "
        "(Tsang & Schultz 2019). Each pipeline stage is a subcommand; `dvc repro` runs them "
        "in order. Run `varnet <command> --help` for a command's options.",
    )
    parser.add_argument("--params", action="append", metavar="FILE",
                        help="params file; repeat to overlay files in order, e.g. "
                        "--params params.yaml --params configs/surveys/eros1-lmc.yaml "
                        "(default: params.yaml)")
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for name, (module_name, summary) in COMMANDS.items():
        if name != command:
            sub.add_parser(name, help=summary)
            continue
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(name, help=summary, description=module.__doc__,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(cmd)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if a in COMMANDS), None)
    try:
        parser = build_parser(command)
        args = parser.parse_args(argv)
        params = load_params(args.params or ["params.yaml"])
        module = importlib.import_module(COMMANDS[args.command][0])
        return int(module.run(args, params) or 0)
    except VarnetError as exc:
        print(f"varnet {command}: error: {exc}" if command else f"varnet: error: {exc}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("varnet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
