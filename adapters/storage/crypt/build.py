"""A `CryptStorage` from a crypt backend's options: keys derived from the
revealed passwords, over the storage its `remote` names."""

from __future__ import annotations

from adapters.storage.backend_options import check_backend_options
from adapters.storage.crypt.cipher import NameCipher, NameSettings, derive_keys
from adapters.storage.crypt.storage import CryptStorage
from adapters.storage.obscure import reveal
from adapters.storage.wrapped import build_wrapped, plain_subpath
from domain.errors import OptionError
from domain.volume import BackendSpec


def build_crypt_storage(spec: BackendSpec) -> CryptStorage:
    checked = check_backend_options("crypt", spec.options)
    password = reveal(checked.text("password"), "crypt option 'password'")
    if not password:
        raise OptionError("crypt option 'password' is required and must not be empty")
    obscured_salt = checked.text("password2")
    salt = reveal(obscured_salt, "crypt option 'password2'") if obscured_salt else ""
    data_key, name_key, tweak = derive_keys(password, salt)
    settings = NameSettings(
        mode=checked.text("filename_encryption"),
        directory_names=checked.flag("directory_name_encryption"),
        encoding=checked.text("filename_encoding"),
        suffix=checked.text("suffix"),
    )
    if settings.mode == "off" and not settings.suffix:
        raise OptionError("crypt option 'suffix' must not be empty with filename_encryption off")
    inner = build_wrapped(checked.text("remote"))
    return CryptStorage(
        inner,
        NameCipher(name_key, tweak, settings),
        data_key,
        root=plain_subpath(spec.root),
        encrypt_data=not checked.flag("no_data_encryption"),
        label=f"crypt {spec.root or '/'}",
    )
