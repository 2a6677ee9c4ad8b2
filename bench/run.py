"""Side-by-side benchmarks: cloudvol against `rclone serve docker` (Debian's
rclone 1.60.1), sshfs and the local disk, all on the same OpenSSH server on
loopback (--backend sftp, issue 4), or cloudvol's S3 volumes against rclone's s3
backend, both on the same moto standalone S3 server on loopback (--backend s3,
issue 3); in one run.

cloudvol and rclone serve Docker volumes; sshfs is a plain mount (bind-mounted
into containers where a scenario runs in one). Each figure is a median of
--repeat runs and is reported as a ratio to the references measured in the same
run; the table goes to stdout and is appended to --results.

Scenarios (--scenarios, comma-separated; default all):
  read    sequential read of a --size-mib file, cache mode off
  write   sequential write of a --write-mib file in a container until it is whole
          on the remote: cloudvol in cache mode writes, rclone in mode off (and
          once in mode writes, which is "not delivered" if it never arrives)
  small   --small-files small files written then read in one container, in cache
          modes writes and off
  cached  re-read of a cached --size-mib file in cache mode full, against the
          local disk
  memory  peak memory (VmHWM) of the process serving the mount while streaming
          the --size-mib file, default flags
  list    ls -l of a directory of --files files, cold and warm
  tar     tar -x in a container of a 5,000-file tree, cache mode writes, against
          rclone (writes) and sshfs (issue 11; only when named: --scenarios tar)

S3 scenarios (--backend s3, or name them in --scenarios; sshfs does not take part):
  s3-read   sequential read of an --s3-mib object, cache mode off
  s3-write  sequential write of an --s3-mib file in a container until the object is
            whole in the bucket: cloudvol in its default cache mode off (it streams),
            rclone in mode off
  s3-list   ls -l of a prefix of --files objects, cold and warm

Issue 10 (bench/fleet.py; not in the default --backend sets):
  volumes   --volume-counts SFTP volumes at once, each held by an idle container:
            time until all run, longest List meanwhile, total PSS, processes
  mount     Mount + Unmount per docker run, fresh volume and volume used before
Only when named in --scenarios (issue 11 §6):
  streams     sequential read of the --size-mib file with --vfs-read-chunk-streams
              1, 4 and 16 (--vfs-read-chunk-size 4M) against cloudvol's default reader
  s3-streams  the same on the --s3-mib object

    make bench                       # every SFTP scenario at full size
    python bench/run.py --backend s3 # every S3 scenario at full size
    python bench/run.py --quick      # everything scaled down: a smoke run
    python bench/run.py --scenarios read,memory --repeat 5
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fleet import FLEET_SCENARIOS
from bench.harness import Bench
from bench.report import Result, render
from bench.scenarios import BACKENDS, SCENARIOS, Config
from tests.integration.fixtures.dockerd import running_dockerd

FULL = {
    "size_mib": 1024,
    "write_mib": 512,
    "small_files": 300,
    "files": 2000,
    "s3_mib": 256,
    "repeat": 3,
    "undelivered_wait": 120.0,
}
QUICK = {
    "size_mib": 64,
    "write_mib": 32,
    "small_files": 30,
    "files": 200,
    "s3_mib": 32,
    "repeat": 1,
    "undelivered_wait": 15.0,
}
TARGETS = ("cloudvol", "rclone", "sshfs")
ALL_SCENARIOS = {**SCENARIOS, **FLEET_SCENARIOS}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python bench/run.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="scale every size down for a smoke run, and only print the table "
        "unless --results is given",
    )
    parser.add_argument(
        "--backend",
        choices=[*BACKENDS, "all"],
        default="sftp",
        help="the remote whose scenarios run when --scenarios is not given (sftp)",
    )
    parser.add_argument("--scenarios", help="comma-separated; overrides --backend")
    parser.add_argument("--targets", default=",".join(TARGETS), help="cloudvol is always measured")
    parser.add_argument("--size-mib", type=int, help="read, cached and memory file (1024)")
    parser.add_argument("--write-mib", type=int, help="file written in a container (512)")
    parser.add_argument("--small-files", type=int, help="small files in one container (300)")
    parser.add_argument(
        "--files", type=int, help="files in the listed directory or S3 prefix (2000)"
    )
    parser.add_argument("--s3-mib", type=int, help="S3 object read, and file written (256)")
    parser.add_argument("--repeat", type=int, help="runs per figure, median reported (3)")
    parser.add_argument(
        "--undelivered-wait",
        type=float,
        help="seconds after a container exits before a write counts as not delivered (120)",
    )
    parser.add_argument(
        "--volume-counts", default="1,10,50", help="volumes scenario: fleet sizes (1,10,50)"
    )
    parser.add_argument(
        "--results", type=Path, help="Markdown file to append the table to (bench/RESULTS.md)"
    )
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.results is None and not args.quick:
        args.results = Path(__file__).parent / "RESULTS.md"
    if args.scenarios is None:
        backends = list(BACKENDS) if args.backend == "all" else [args.backend]
        args.scenarios = ",".join(name for b in backends for name in BACKENDS[b])
    unknown = set(args.scenarios.split(",")) - set(ALL_SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; choose from {', '.join(ALL_SCENARIOS)}")
    bad_targets = set(args.targets.split(",")) - set(TARGETS)
    if bad_targets:
        parser.error(f"unknown targets {sorted(bad_targets)}; choose from {', '.join(TARGETS)}")
    return args


def version(argv: list[str], word: str) -> str:
    """The first line of `argv`'s output that mentions `word`."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except OSError:
        return f"{word} ?"
    lines = (proc.stdout + proc.stderr).splitlines()
    return next((line.strip() for line in lines if word in line), f"{word} ?")


def environment(backends: list[str]) -> str:
    parts = [f"Machine: {os.cpu_count()} cores, Linux {platform.release()}"]
    if "sftp" in backends:
        parts.append(f"SFTP over loopback to {version(['ssh', '-V'], 'OpenSSH')}")
    if "s3" in backends:
        import moto

        parts.append(f"S3 over loopback to moto {moto.__version__} (standalone server)")
    parts.append(version(["rclone", "version"], "rclone"))
    if "sftp" in backends:
        parts.append(version(["sshfs", "--version"], "SSHFS"))
    return "; ".join(parts) + "."


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    command = "python bench/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
    cfg = Config(
        size_mib=args.size_mib,
        write_mib=args.write_mib,
        small_files=args.small_files,
        files=args.files,
        s3_mib=args.s3_mib,
        repeat=args.repeat,
        undelivered_wait=args.undelivered_wait,
        targets=frozenset(args.targets.split(",")) | {"cloudvol"},
        volume_counts=tuple(int(n) for n in args.volume_counts.split(",")),
    )
    chosen = [name for name in ALL_SCENARIOS if name in args.scenarios.split(",")]

    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="cvb", dir="/tmp") as tmp:
        root = Path(tmp)
        (root / "d").mkdir()
        with running_dockerd(root / "d") as docker:
            bench = Bench(root, docker)  # starts each remote when a scenario first needs it
            try:
                for name in chosen:
                    print(f"scenario {name}:", flush=True)
                    results.extend(ALL_SCENARIOS[name](bench, cfg))
            finally:
                backends = [remote.name for remote in bench.started_remotes]
                bench.close()

    summary = (
        f"{'quick smoke run, ' if args.quick else ''}scenarios {', '.join(chosen)}; "
        f"median of {cfg.repeat}"
    )
    table = render(results, command.strip(), summary, environment(backends))
    print(table)
    if args.results is not None:
        with open(args.results, "a") as fh:
            fh.write("\n" + table)
        print(f"appended to {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
