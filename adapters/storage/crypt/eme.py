"""EME (ECB-Mix-ECB, Halevi and Rogaway) over AES: the wide-block mode rclone
encrypts file names with, so that equal names encrypt equally and any change
changes the whole name. Input lengths are multiples of 16 bytes (1 to 128 blocks).
Doubling in GF(2^128) follows rclone's EME library: little-endian, reduction 0x87."""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

_BLOCK = 16


def _double(block: bytes) -> bytes:
    value = int.from_bytes(block, "little") << 1
    if value >> 128:
        value = (value & ((1 << 128) - 1)) ^ 0x87
    return value.to_bytes(_BLOCK, "little")


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "little") ^ int.from_bytes(b, "little")).to_bytes(_BLOCK, "little")


class Eme:
    def __init__(self, key: bytes) -> None:
        cipher = Cipher(algorithms.AES(key), modes.ECB())
        self._encryptor = cipher.encryptor()
        self._decryptor = cipher.decryptor()
        self._l_table: list[bytes] = []
        first = _double(self._encryptor.update(bytes(_BLOCK)))
        for _ in range(128):
            self._l_table.append(first)
            first = _double(first)

    def encrypt(self, tweak: bytes, data: bytes) -> bytes:
        return self._transform(tweak, data, self._encryptor.update)

    def decrypt(self, tweak: bytes, data: bytes) -> bytes:
        return self._transform(tweak, data, self._decryptor.update)

    def _transform(self, tweak: bytes, data: bytes, aes: object) -> bytes:
        assert callable(aes)
        count = len(data) // _BLOCK
        if len(data) % _BLOCK or not 1 <= count <= len(self._l_table):
            raise ValueError("EME needs 1 to 128 whole 16-byte blocks")
        table = self._l_table
        blocks = [aes(_xor(data[j * _BLOCK : (j + 1) * _BLOCK], table[j])) for j in range(count)]
        mp = _xor(blocks[0], tweak)
        for block in blocks[1:]:
            mp = _xor(mp, block)
        mc = aes(mp)
        mask = _xor(mp, mc)
        for j in range(1, count):
            mask = _double(mask)
            blocks[j] = _xor(blocks[j], mask)
        first = _xor(mc, tweak)
        for block in blocks[1:]:
            first = _xor(first, block)
        blocks[0] = first
        return b"".join(_xor(aes(blocks[j]), table[j]) for j in range(count))
