"""`docker volume create -o key=value` options -> a typed VolumeSpec.

Rules (rclone's, see RCLONE_FACTS.md): keys are normalised; exactly one of
`remote`/`fs` (synonyms) and `type` says where the data is; `path` overrides the
remote's path; every other key is a registry option (mount, VFS, global), else
`<type>-<backend option>`, else an error. The daemon's flags are the defaults and
volume options override them.

Backend options, lowest precedence first: the option's default, a daemon flag, the
remote's config file section, the connection string, `-o <type>-<option>`. In a
config file, keys that are no option of the backend are ignored and empty values
mean "not set", as rclone reads its file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from domain.backends import BackendDecl, BackendValue, backend_types, find_backend
from domain.errors import OptionError
from domain.options import apply_option_values, find_option, normalise_key
from domain.rclone_config import RcloneConfig
from domain.remote_spec import parse_remote
from domain.volume import BackendSpec, Timeouts, VolumeSpec
from domain.wrapped_remotes import inline_option

_REMOTE_KEYS = ("remote", "fs")
_SPECIAL_KEYS = frozenset({*_REMOTE_KEYS, "type", "path"})
# rclone's own special keys, which mean nothing here; refused rather than ignored.
_RCLONE_ONLY = {
    "mount-type": "not supported (cloudvol has a single FUSE implementation)",
    "persist": "not supported yet (remotes are not saved to a config file)",
}


@dataclass(frozen=True)
class ParsedVolumeOptions:
    spec: VolumeSpec
    # As rclone's state file has them: the remote string, the type and the explicit
    # path exactly as given ("" when not given).
    fs: str
    type: str
    path: str


def _normalise(opts: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """normalised key -> (key as given, value); an option given twice is an error."""
    result: dict[str, tuple[str, str]] = {}
    for key in sorted(opts):
        norm = normalise_key(key)
        if not norm:
            continue  # rclone skips an empty key
        if norm in result:
            raise OptionError(f'option "{norm}" given twice (as "{result[norm][0]}" and "{key}")')
        result[norm] = (key, opts[key])
    return result


def _backend_key(norm: str, backend_type: str, backend: BackendDecl) -> str | None:
    """The backend option name for a `<type>-<option>` key, else None."""
    prefix = f"{backend_type}-"
    if not norm.startswith(prefix):
        return None
    if backend.passthrough:
        return _passthrough_name(norm[len(prefix) :]) or None
    decl = backend.option(norm[len(prefix) :])
    return decl.name if decl is not None else None


def _passthrough_name(key: str) -> str:
    """An fsspec parameter name as the user spells it: dashes read as underscores."""
    return key.strip().lower().replace("-", "_")


def _config_remote(
    name: str, remote: str, config: RcloneConfig | None
) -> tuple[str, dict[str, str]]:
    """The backend type of config remote `name` and the values set for it."""
    if config is None:
        raise OptionError(f'remote "{remote}": no config file to look "{name}" up in')
    if not config.exists:
        raise OptionError(
            f'remote "{remote}": config file {config.path} not found (create it with a '
            f'[{name}] section, or give a connection string like ":sftp,host=example.org:/path")'
        )
    if not config.has_section(name):
        raise OptionError(f'remote "{name}": not found in config file {config.path}')
    backend_type = config.value(name, "type")
    if not backend_type:
        raise OptionError(
            f'remote "{name}": its section in config file {config.path} has no "type"'
        )
    keys: list[str] = []
    section = name
    while True:  # a dotted section falls back on its parents, as rclone reads them
        keys.extend(k for k in config.keys(section) if k not in keys)
        dot = section.rfind(".")
        if dot < 0:
            break
        section = section[:dot]
    values: dict[str, str] = {}
    for key in keys:
        value = config.value(name, key)
        if key != "type" and value:
            values[key] = value
    return backend_type, values


def _inline_wrapped(backend_type: str, name: str, raw: str, config: RcloneConfig | None) -> str:
    """A wrapper's remote-holding option with the config remotes in it inlined,
    so the mount worker needs no config file to build the wrapped storages."""

    def lookup(config_name: str) -> tuple[str, dict[str, str]]:
        return _config_remote(config_name, raw, config)

    def remote_options(of_type: str) -> tuple[str, ...]:
        return find_backend(of_type).remote_options

    return inline_option(backend_type, name, raw, lookup, remote_options)


def _foreign_backend_key(norm: str) -> bool:
    """A `<other type>-<option>` key: a daemon default meant for other volumes."""
    for other in backend_types():
        prefix = f"{other}-"
        if norm.startswith(prefix) and find_backend(other).option(norm[len(prefix) :]):
            return True
    return False


def parse_volume_options(
    volume_opts: Mapping[str, str],
    defaults: Mapping[str, str] | None = None,
    config: RcloneConfig | None = None,
) -> ParsedVolumeOptions:
    """Parse Docker's `-o` options over the daemon's `defaults`.

    `defaults` are raw strings keyed like volume options (registry option names,
    or `<type>-<backend option>`); the entrypoint passes the flags given to the
    daemon plus the process's uid, gid and umask. `config` is the config file that
    `name:path` remotes are looked up in (None: no config file, so they are
    refused). Raises OptionError.
    """
    opts = _normalise(volume_opts)
    given_defaults = _normalise(defaults or {})
    if _SPECIAL_KEYS & given_defaults.keys():
        raise OptionError('"remote", "fs", "type" and "path" cannot be daemon defaults')

    remotes = [(key, value) for key in _REMOTE_KEYS if (value := opts.get(key, ("", ""))[1])]
    type_opt = opts.get("type", ("", ""))[1]
    explicit_path = opts.get("path", ("", ""))[1]
    if len(remotes) == 2:
        raise OptionError('give only one of "remote" and "fs" (they mean the same)')
    if remotes and type_opt:
        raise OptionError('give either "remote" (or "fs") or "type", not both')
    if not remotes and not type_opt:
        raise OptionError(
            'give "remote" (or "fs"), e.g. -o remote=:sftp,host=example.org:/srv, '
            'or "type", e.g. -o type=sftp -o sftp-host=example.org'
        )

    remote = remotes[0][1] if remotes else ""
    inline: dict[str, str] = {}
    from_config: dict[str, str] = {}
    remote_name = ""
    if remote:
        parsed = parse_remote(remote)
        backend_type, path, inline = parsed.type, parsed.path, parsed.options
        if parsed.name:
            remote_name = parsed.name
            backend_type, from_config = _config_remote(parsed.name, remote, config)
    else:
        backend_type, path = type_opt, ""
    if explicit_path:
        path = explicit_path
    backend = find_backend(backend_type)

    # Registry options: the daemon's defaults, then -o. Backend options (option
    # name -> (key as shown in errors, raw value)), later sources winning: the
    # daemon's defaults, the config file, the connection string, -o.
    registry_raw: dict[str, str] = {}
    backend_raw: dict[str, tuple[str, str]] = {}
    dash_o: dict[str, tuple[str, str]] = {}
    for source, is_default in ((given_defaults, True), (opts, False)):
        for norm, (key, value) in source.items():
            if norm in _SPECIAL_KEYS:
                continue
            if find_option(norm) is not None:
                registry_raw[norm] = value
            elif (name := _backend_key(norm, backend_type, backend)) is not None:
                (backend_raw if is_default else dash_o)[name] = (key, value)
            elif is_default and _foreign_backend_key(norm):
                continue
            elif norm in _RCLONE_ONLY:
                raise OptionError(f"{norm}: {_RCLONE_ONLY[norm]}")
            elif is_default:
                raise OptionError(f'unknown option "{key}" in the daemon\'s defaults')
            else:
                raise OptionError(f'unsupported backend option "{key}"')
    for key in sorted(from_config):
        where = f"{key} in [{remote_name}] of {config.path if config else ''}"
        if backend.passthrough:
            backend_raw[_passthrough_name(key)] = (where, from_config[key])
        elif (decl := backend.option(key)) is not None and decl.name == key:
            backend_raw[decl.name] = (where, from_config[key])
    for key in sorted(inline):
        if backend.passthrough:
            backend_raw[_passthrough_name(key)] = (key, inline[key])
            continue
        decl = backend.option(key)
        if decl is None:
            raise OptionError(f'unsupported backend option "{key}" in remote "{remote}"')
        backend_raw[decl.name] = (key, inline[key])
    backend_raw.update(dash_o)
    for name in backend.remote_options:  # crypt's remote, union's upstreams...
        if name in backend_raw:
            key, raw = backend_raw[name]
            backend_raw[name] = (key, _inline_wrapped(backend_type, name, raw, config))

    backend_options: dict[str, BackendValue] = backend.defaults()
    for name, (key, raw) in sorted(backend_raw.items()):
        if backend.passthrough:
            backend_options[name] = raw  # typed by the adapter, which knows the filesystem
            continue
        decl = backend.option(name)
        assert decl is not None
        if decl.unused:
            decl.type.parse(key, raw)  # still a well-formed value
            continue
        if not decl.is_supported and decl.is_default_value(raw):
            continue  # asks for what cloudvol does anyway
        backend_options[name] = decl.parse(backend_type, raw, shown_as=key)
    missing = [
        f"{backend_type}-{decl.name.replace('_', '-')}"
        for decl in backend.options
        if decl.required and decl.name not in backend_options
    ]
    if missing:
        raise OptionError(f"{', '.join(missing)} is required for type {backend_type}")
    if backend.root_must_be_absolute and not path.startswith("/"):
        raise OptionError(
            f'the {backend_type} backend needs an absolute path, got "{path}" '
            "(e.g. -o remote=/srv/data, or -o path=/srv/data)"
        )
    if backend.bucket_in_path:
        path = path.strip("/")
        if not path:
            raise OptionError(
                f"the {backend_type} backend needs a bucket: -o path=bucket or "
                "-o path=bucket/dir (a volume of all buckets is not supported yet)"
            )

    mount, vfs = apply_option_values(registry_raw)
    spec = VolumeSpec(
        backend=BackendSpec(
            type=backend_type,
            root=path,
            options=dict(sorted(backend_options.items())),
            timeouts=Timeouts(connect=vfs.connect_timeout, io_idle=vfs.io_timeout),
        ),
        mount=mount,
        vfs=vfs,
    )
    return ParsedVolumeOptions(spec=spec, fs=remote, type=type_opt, path=explicit_path)
