"""``python -m bench [append|rebuild|replay|http|writes|scale|import|webhooks|all]
[options]`` (``make bench``).

Prints the machine, then each benchmark's parameters and figures next to its raw
baseline, measured in the same run. See docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType

from bench import append, http_load, http_writes, import_, rebuild, replay, scale, webhooks
from bench.common import Histories, Options, note, print_machine

BENCHMARKS: dict[str, Callable[[Options, Histories], None]] = {
    "append": lambda options, _: append.run(options),
    "rebuild": rebuild.run,
    "replay": replay.run,
    "http": http_load.run,
    "writes": http_writes.run,
    "scale": scale.run,
    "import": import_.run,
    "webhooks": webhooks.run,
}


def parse(argv: list[str]) -> tuple[list[str], Options]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("benchmark", nargs="?", default="all", choices=[*BENCHMARKS, "all"])
    parser.add_argument(
        "--events", type=int, help="history size for rebuild, replay and http (default 1M)"
    )
    parser.add_argument("--backend", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--quick", action="store_true", help="small sizes: seconds, not minutes")
    parser.add_argument("--big", action="store_true", help="scale: also at 5M events")
    parser.add_argument("--profile", action="store_true", help="rebuild under cProfile")
    parser.add_argument("--repeats", type=int, help="runs of append to take the median of")
    args = parser.parse_args(argv)
    names = list(BENCHMARKS) if args.benchmark == "all" else [args.benchmark]
    options = Options(
        backend=args.backend,
        quick=args.quick,
        events=args.events,
        big=args.big,
        profile=args.profile,
        repeats=args.repeats,
    )
    return names, options


def _interrupt(signum: int, _: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    names, options = parse(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _interrupt)  # clean up as on Ctrl-C
    started = time.perf_counter()
    print_machine(options.backend)
    try:
        with Histories() as histories:
            for name in names:
                BENCHMARKS[name](options, histories)
    except KeyboardInterrupt:
        print("\ninterrupted; stores and processes cleaned up", file=sys.stderr)
        return 130
    note(f"\n   done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
