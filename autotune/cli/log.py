"""Commands on tuning logs: `log summary|merge|distill|validate|upgrade`, and the pre-tuned `pack`s."""
from __future__ import annotations

import argparse

from autotune.cli.common import UsageError, check_readable


def cmd_log(args: argparse.Namespace) -> int:
    from autotune.log.jsonl import write_log
    from autotune.log.merge import distill, merge
    from autotune.log.summary import summarize, summary_lines
    from autotune.log.upgrade import upgrade
    from autotune.log.validate import validate
    from targets import get_device

    for path in args.logs:
        check_readable(path)
    if args.verb == "summary":
        print("\n".join(summary_lines(summarize(merge(args.logs)))))
        return 0
    if args.verb == "validate":
        try:
            device = get_device(args.device) if args.device else None
        except ValueError as error:
            raise UsageError(str(error)) from None
        reports = [validate(path, device) for path in args.logs]
        print("\n\n".join(str(report) for report in reports))
        return 0 if all(report.ok for report in reports) else 1
    if not args.output:
        raise UsageError(f"log {args.verb} needs -o/--output")
    if args.verb == "merge":
        records = merge(args.logs)
    elif args.verb == "distill":
        if args.top < 1:
            raise UsageError(f"--top must be positive, got {args.top}")
        records = distill(merge(args.logs), args.top)
    else:  # upgrade
        records, report = upgrade(merge(args.logs))
        print(report)
    lines = write_log(args.output, records)
    print(f"wrote {lines} records to {args.output}")
    return 0


def cmd_pack(args: argparse.Namespace) -> int:
    from autotune.log import packs
    from autotune.log.merge import distill, merge

    if args.verb == "list":
        found = packs.list_packs()
        if not found:
            print(f"no packs in {packs.PACK_DIR}")
        for pack in found:
            print(f"{pack.name:30s} {pack.device:10s} {pack.target.get('mcpu', '-'):12s} {pack.workloads:>4d} workloads  {pack.path}")
        return 0
    if not args.name or not args.logs:
        raise UsageError("pack build needs --name and at least one log")
    for path in args.logs:
        check_readable(path)
    try:
        path = packs.build_pack(args.name, distill(merge(args.logs), args.top))
    except ValueError as error:
        raise UsageError(str(error)) from None
    print(f"wrote {path}")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    log_cmd = commands.add_parser("log", help="summarize, merge, distill, validate or upgrade tuning logs")
    log_cmd.add_argument("verb", choices=["summary", "merge", "distill", "validate", "upgrade"])
    log_cmd.add_argument("logs", nargs="+", help="JSON-lines tuning logs")
    log_cmd.add_argument("-o", "--output", help="log to write (merge, distill, upgrade)")
    log_cmd.add_argument("--top", type=int, default=1, help="best configs kept per workload (distill; default 1)")
    log_cmd.add_argument("--device", help="validate: flag lines from other devices than this preset")
    log_cmd.set_defaults(run=cmd_log)

    pack = commands.add_parser("pack", help="build or list the pre-tuned packs shipped with the package")
    pack.add_argument("verb", choices=["build", "list"])
    pack.add_argument("logs", nargs="*", help="build: tuning logs to distill into the pack")
    pack.add_argument("--name", help="build: pack name, e.g. host-znver5")
    pack.add_argument("--top", type=int, default=1, help="best configs kept per workload (default 1)")
    pack.set_defaults(run=cmd_pack)
