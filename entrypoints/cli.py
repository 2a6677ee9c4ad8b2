"""The `cloudvol` command: `cloudvol serve docker [flags]`, `cloudvol mount REMOTE
MOUNTPOINT [flags]`, `cloudvol status`, `cloudvol rc COMMAND` and `cloudvol version`."""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import TYPE_CHECKING, Any

import anyio
from loguru import logger

from adapters.config import default_config_path
from adapters.config.encrypted import PASSWORD_VARIABLES, run_password_command
from domain.errors import OptionError
from entrypoints.environment import apply_environment
from entrypoints.logging_setup import configure_logging, level_for

if TYPE_CHECKING:
    from entrypoints.serve_docker import ServeSettings

# entrypoints.serve_docker (hypercorn, FastAPI, the container) is imported only by
# `serve docker`, so that `version` and `--help` start quickly.

DEFAULT_BASE_DIR = "/var/lib/docker-volumes/cloudvol"


def default_cache_dir() -> str:
    """rclone's choice (Go's os.UserCacheDir + "rclone"), with our name:
    `$XDG_CACHE_HOME/cloudvol`, else `~/.cache/cloudvol` (root: /root/.cache/cloudvol)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "cloudvol")


def version() -> str:
    try:
        return metadata.version("cloudvol")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _add_daemon_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--base-dir",
        default=DEFAULT_BASE_DIR,
        help=f"Base directory for volumes (default {DEFAULT_BASE_DIR!r})",
    )
    parser.add_argument(
        "--socket-addr",
        default="",
        help="Address <host:port> or absolute path (default: /run/docker/plugins/cloudvol.sock)",
    )
    parser.add_argument(
        "--socket-gid",
        type=int,
        default=os.getgid(),
        help="GID for unix socket (default: current process GID)",
    )
    parser.add_argument(
        "--allow-remote-api",
        action="store_true",
        help="Let --socket-addr listen on an address other than loopback (the plugin API "
        "has no authentication, and its callers choose key files and paths: root-equivalent)",
    )
    parser.add_argument("--no-spec", action="store_true", help="Do not write spec file")
    parser.add_argument("--forget-state", action="store_true", help="Skip restoring previous state")
    parser.add_argument(
        "--cache-dir",
        default=None,
        help="Directory for the state file and caches (default $XDG_CACHE_HOME/cloudvol"
        " or ~/.cache/cloudvol)",
    )
    parser.add_argument(
        "--config",
        default=None,
        help="Config file with named remotes, in rclone's format (an rclone.conf works); "
        "default: $XDG_CONFIG_HOME/cloudvol/cloudvol.conf or ~/.config/cloudvol/cloudvol.conf",
    )
    parser.add_argument(
        "--password-command",
        default=None,
        help="Command whose output is the password of an encrypted config file "
        "(else CLOUDVOL_CONFIG_PASS or RCLONE_CONFIG_PASS)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="Print more: -v for INFO, -vv for DEBUG (default WARNING)",
    )
    parser.add_argument("--log-file", default=None, help="Log to this file instead of stderr")
    parser.add_argument(
        "--admin-socket",
        default="",
        help="Unix socket of the admin API used by `cloudvol status` and `cloudvol rc`, "
        "mode 0600 (default <cache-dir>/admin.sock)",
    )
    parser.add_argument(
        "--metrics-addr",
        default="",
        help="Serve Prometheus metrics on HOST:PORT at /metrics (default off; loopback "
        "only unless --metrics-allow-remote)",
    )
    parser.add_argument(
        "--metrics-allow-remote",
        action="store_true",
        help="Allow --metrics-addr on an address other than loopback",
    )


def _add_admin_client_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache-dir",
        default=None,
        help="The daemon's --cache-dir (default $XDG_CACHE_HOME/cloudvol or ~/.cache/cloudvol)",
    )
    parser.add_argument(
        "--admin-socket",
        default="",
        help="The daemon's --admin-socket (default <cache-dir>/admin.sock)",
    )


def _add_mount_parser(commands: argparse._SubParsersAction[Any]) -> None:
    mount = commands.add_parser(
        "mount",
        help="Mount a remote at a directory, in the foreground (like rclone mount)",
        description="Mount REMOTE (a connection string, name:path from the config file, "
        "or a local path) at MOUNTPOINT with the VFS of `serve docker`. Ctrl-C or SIGTERM "
        "unmounts, then finishes the pending uploads. --daemon detaches once mounted.",
    )
    mount.add_argument("remote", metavar="REMOTE")
    mount.add_argument("mountpoint", metavar="MOUNTPOINT")
    mount.add_argument(
        "--cache-dir",
        default=None,
        help="Directory for the VFS cache (default $XDG_CACHE_HOME/cloudvol or "
        "~/.cache/cloudvol); a daemon using the same one lists this mount in `cloudvol status`",
    )
    mount.add_argument("--config", default=None, help="Config file with named remotes")
    mount.add_argument(
        "--password-command", default=None, help="Command printing the config file's password"
    )
    mount.add_argument(
        "-v", "--verbose", action="count", default=0, help="-v for INFO, -vv for DEBUG"
    )
    mount.add_argument("--log-file", default=None, help="Log to this file instead of stderr")
    _add_option_flags(mount)


def _add_option_flags(parser: argparse.ArgumentParser) -> None:
    # The mount/VFS flags come from the option registry, the one place declaring them.
    from entrypoints.flags import add_option_flags

    add_option_flags(parser)


def _given_option_values(ns: argparse.Namespace) -> dict[str, str]:
    from entrypoints.flags import given_option_values

    return given_option_values(ns)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cloudvol", description="Remote storage as Docker volumes, through FUSE."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("version", help="Show the version")
    serve = commands.add_parser("serve", help="Serve remotes over a protocol")
    protocols = serve.add_subparsers(dest="protocol", metavar="PROTOCOL")
    docker = protocols.add_parser(
        "docker",
        help="Serve any remote on docker's volume plugin API",
        description="Serve any remote on docker's volume plugin API (like rclone serve docker).",
    )
    _add_daemon_flags(docker)
    _add_option_flags(docker)
    _add_mount_parser(commands)
    status = commands.add_parser(
        "status", help="Show the daemon's volumes: mounts, workers, cache and uploads"
    )
    status.add_argument("volume", nargs="?", metavar="VOLUME", help="Show this volume only")
    status.add_argument("--json", action="store_true", help="Print JSON, for scripts")
    status.add_argument(
        "--watch", action="store_true", help="Redraw every second, with upload progress bars"
    )
    _add_admin_client_flags(status)
    rc = commands.add_parser(
        "rc",
        help="Run a remote control command (rclone's names: vfs/forget, vfs/refresh, "
        "vfs/stats, vfs/queue, vfs/queue-set-expiry, core/version)",
    )
    rc.add_argument("rc_command", metavar="COMMAND")
    rc.add_argument("params", nargs="*", metavar="KEY=VALUE")
    _add_admin_client_flags(rc)
    return parser


def serve_docker_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The `serve docker` subparser of `parser` (argparse offers no public way there)."""
    serve = _subparsers(parser).choices["serve"]
    docker: argparse.ArgumentParser = _subparsers(serve).choices["docker"]
    return docker


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction[Any]:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def process_defaults() -> dict[str, str]:
    """uid, gid and umask default to the daemon process's own, as in rclone."""
    umask = os.umask(0)
    os.umask(umask)
    return {"uid": str(os.getuid()), "gid": str(os.getgid()), "umask": f"{umask:03o}"}


def settings_from_args(ns: argparse.Namespace) -> ServeSettings:
    """Raises OptionError for a malformed mount/VFS flag value."""
    from entrypoints.serve_docker import ServeSettings as Settings

    return Settings(
        base_dir=os.path.abspath(ns.base_dir),
        cache_dir=os.path.abspath(ns.cache_dir or default_cache_dir()),
        socket_addr=ns.socket_addr,
        socket_gid=ns.socket_gid,
        allow_remote_api=ns.allow_remote_api,
        no_spec=ns.no_spec,
        forget_state=ns.forget_state,
        log_level=level_for(ns.verbose),
        log_file=ns.log_file,
        daemon_defaults={**process_defaults(), **_given_option_values(ns)},
        config_path=os.path.abspath(os.path.expanduser(ns.config or default_config_path())),
        admin_socket=os.path.abspath(ns.admin_socket) if ns.admin_socket else "",
        metrics_addr=_checked_metrics_addr(ns),
        metrics_allow_remote=ns.metrics_allow_remote,
        version=version(),
    )


def _checked_metrics_addr(ns: argparse.Namespace) -> str:
    if not ns.metrics_addr:
        return ""
    from adapters.metrics.address import parse_metrics_addr

    parse_metrics_addr(ns.metrics_addr, allow_remote=ns.metrics_allow_remote)  # OptionError
    return str(ns.metrics_addr)


def _mount(ns: argparse.Namespace) -> int:
    from entrypoints.flags import take_option_value
    from entrypoints.mount_command import build_job, check_options, daemon_flags, mount

    try:
        detach, wait = daemon_flags(
            take_option_value(ns, "daemon"), take_option_value(ns, "daemon-wait")
        )
        defaults = {**process_defaults(), **_given_option_values(ns)}
    except OptionError as exc:
        print(f"cloudvol mount: error: {exc}", file=sys.stderr)
        return 2
    level = level_for(ns.verbose)
    configure_logging(level, ns.log_file)
    if ns.password_command:
        try:
            os.environ[PASSWORD_VARIABLES[0]] = run_password_command(ns.password_command)
        except OptionError as exc:
            print(f"cloudvol mount: error: {exc}", file=sys.stderr)
            return 1
    job = build_job(
        ns,
        cache_dir=os.path.abspath(ns.cache_dir or default_cache_dir()),
        defaults=defaults,
        log_level=level,
        config_path=os.path.abspath(os.path.expanduser(ns.config or default_config_path())),
    )
    problem = check_options(job)
    if problem is not None:
        print(f"cloudvol mount: error: {problem}", file=sys.stderr)
        return 2
    from adapters.fuse.host_check import fuse_problems

    if problems := fuse_problems():
        print("cloudvol mount: FUSE is not usable here:", *problems, sep="\n- ", file=sys.stderr)
        return 1
    return mount(ns, job, detach=detach, wait=wait)


def _serve_docker(ns: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(ns)
    except OptionError as exc:
        print(f"cloudvol: error: {exc}", file=sys.stderr)
        return 2
    configure_logging(
        settings.log_level, settings.log_file, settings.daemon_defaults.get("log-format")
    )
    if ns.password_command:
        try:
            password = run_password_command(ns.password_command)
        except OptionError as exc:
            logger.error("cannot start: {}", exc)
            return 1
        # Workers read the config file too; they inherit the daemon's environment.
        os.environ[PASSWORD_VARIABLES[0]] = password

    from adapters.fuse.host_check import fuse_problems

    if problems := fuse_problems():
        logger.error(
            "cannot start: FUSE is not usable here:\n{}", "\n".join(f"- {p}" for p in problems)
        )
        return 1

    from entrypoints.serve_docker import StartupError, serve_docker

    try:
        anyio.run(serve_docker, settings, backend="asyncio")
    except StartupError as exc:
        logger.error("cannot start: {}", exc)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception:
        logger.exception("the daemon failed")
        return 1
    return 0


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = build_parser()
    try:
        apply_environment(serve_docker_parser(parser), os.environ if environ is None else environ)
    except ValueError as exc:
        print(f"cloudvol: error: {exc}", file=sys.stderr)
        return 2
    try:
        ns = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a bad flag (argparse printed why)
        return exc.code if isinstance(exc.code, int) else 2
    if ns.command == "version":
        print(f"cloudvol v{version()}")
        print(f"- python: {platform.python_version()}")
        print(f"- os/arch: {platform.system().lower()}/{platform.machine()}")
        return 0
    if ns.command == "serve" and ns.protocol == "docker":
        return _serve_docker(ns)
    if ns.command in ("status", "rc"):
        from entrypoints.operate_commands import run_rc, run_status

        cache_dir = os.path.abspath(ns.cache_dir or default_cache_dir())
        return (run_status if ns.command == "status" else run_rc)(ns, cache_dir)
    if ns.command == "mount":
        return _mount(ns)
    parser.print_help(sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
