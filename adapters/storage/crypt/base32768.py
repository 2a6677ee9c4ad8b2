"""Base32768: 15 bits per character, the densest encoding of bytes in names on
file systems that count length in UTF-16 units (rclone's `filename_encoding =
base32768`).

The bit stream (big-endian) is cut in 15-bit pieces, each one character of the
15-bit repertoire; a last piece of 7 bits or fewer is padded with 1s to 7 bits and
drawn from the 7-bit repertoire, a longer one padded with 1s to 15 bits. Each
repertoire is a list of code point ranges taken in order.
"""

from __future__ import annotations

_RANGES_15 = (
    "ҠҿԀԟڀڿݠޟ߀ߟကဟႠႿᄀᅟᆀᆟᇠሿበቿዠዿጠጿᎠᏟᐠᙟᚠᛟកសᠠᡟᣀᣟᦀᦟ᧠᧿ᨠᨿᯀᯟᰀᰟᴀᴟ⇠⇿⋀⋟⍀⏟␀␟─❟➀➿⠀⥿⦠⦿⨠⩟⪀⪿⫠⭟"
    "ⰀⰟⲀⳟⴀⴟⵀⵟ⺠⻟㇀㇟㐀䶟䷀龿ꀀꑿ꒠꒿ꔀꗿꙀꙟꚠꛟ꜀ꝟꞀꞟꡀꡟ"
)
_RANGES_7 = "ƀƟɀʟ"


def _repertoire(ranges: str) -> str:
    return "".join(
        "".join(chr(c) for c in range(ord(ranges[i]), ord(ranges[i + 1]) + 1))
        for i in range(0, len(ranges), 2)
    )


_ENCODE = {15: _repertoire(_RANGES_15), 7: _repertoire(_RANGES_7)}
_DECODE = {
    char: (bits, value) for bits, chars in _ENCODE.items() for value, char in enumerate(chars)
}


def encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    total = len(data) * 8
    out: list[str] = []
    full, rest = divmod(total, 15)
    for index in range(full):
        shift = total - 15 * (index + 1)
        out.append(_ENCODE[15][(number >> shift) & 0x7FFF])
    if rest:
        width = 7 if rest <= 7 else 15
        tail = number & ((1 << rest) - 1)
        padded = (tail << (width - rest)) | ((1 << (width - rest)) - 1)
        out.append(_ENCODE[width][padded])
    return "".join(out)


def decode(text: str) -> bytes:
    """The bytes of `text`; ValueError if it is not canonical base32768."""
    number = 0
    bits = 0
    for position, char in enumerate(text):
        found = _DECODE.get(char)
        if found is None:
            raise ValueError(f"not a base32768 character: {char!r}")
        width, value = found
        if width == 7 and position != len(text) - 1:
            raise ValueError("a 7-bit base32768 character before the end")
        number = (number << width) | value
        bits += width
    extra = bits % 8
    if number & ((1 << extra) - 1) != (1 << extra) - 1:
        raise ValueError("base32768 padding is not all ones")
    return (number >> extra).to_bytes(bits // 8, "big")
