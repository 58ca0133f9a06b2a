"""Compressed crawl files read so that a cut or corrupt file still gives what precedes the damage.

warcio reads per-record gzip itself; other codecs (LZ4, zstd, bz2, a whole-file gzip) are decoded
here block by block, and both paths report a stream that ends early instead of ending quietly.
"""
from __future__ import annotations

import bz2
import zlib
from typing import IO, Any, Callable

from warcio.bufferedreaders import DecompressingBufferedReader
from warcio.exceptions import ArchiveLoadFailed
from warcio.utils import BUFF_SIZE

MAGIC = {b"\x04\x22\x4d\x18": "lz4", b"\x28\xb5\x2f\xfd": "zstd", b"BZh": "bz2", b"\x1f\x8b": "gzip"}


class MemberReader(DecompressingBufferedReader):
    """warcio's reader, made to notice what it lets pass silently: a gzip member cut short at the end
    of the file (the iteration just ends), and corrupt data inside a member (it prints it, reads on)."""

    cut_short = False

    def _init_decomp(self, decomp_type):
        super()._init_decomp(decomp_type)
        self.fed = False  # whether this member's decompressor got any data

    def _decompress(self, data):
        if self.decompressor is not None and data:
            self.fed = True
            if self.num_block_read:  # mid-member: let zlib.error out
                return self.decompressor.decompress(data)
        return super()._decompress(data)  # its first block: warcio tells gzip from plain data here

    def close_decompressor(self):
        if self.decompressor is not None and self.fed and not self.decompressor.eof:
            self.cut_short = True
        super().close_decompressor()


def read_errors() -> tuple[type[BaseException], ...]:
    """What a damaged file raises while it is read: warcio, gzip/zlib, bz2, lz4 (RuntimeError), zstd."""
    errors: tuple[type[BaseException], ...] = (ArchiveLoadFailed, OSError, EOFError, ValueError, zlib.error,
                                               RuntimeError, StreamCut)
    try:
        import zstandard

        errors += (zstandard.ZstdError,)
    except ImportError:
        pass
    return errors


class StreamCut(Exception):
    """A compressed file ends inside a gzip member, LZ4/zstd frame or bz2 stream. Not an EOFError:
    warcio takes that for the clean end of the file and would drop the cut silently."""


class Decoded:
    """A compressed file decoded block by block with the codec's decompressor objects, one per
    member or frame: what comes before a cut still reaches warcio (gzip.open and friends would
    raise and lose their buffer), then the cut raises StreamCut."""

    def __init__(self, fh: IO[bytes], new_decompressor: Callable[[], Any]):
        self.fh, self.new_decompressor, self.decompressor, self.out = fh, new_decompressor, None, b""

    def read(self, size: int = -1) -> bytes:
        while not self.out:
            data = self.fh.read(BUFF_SIZE)
            if not data:
                if self.decompressor is not None and not self.decompressor.eof:
                    raise StreamCut("the compressed file ends before its end marker")
                return b""
            self._feed(data)
        size = len(self.out) if size is None or size < 0 else size
        chunk, self.out = self.out[:size], self.out[size:]
        return chunk

    def _feed(self, data: bytes) -> None:
        while data:
            if self.decompressor is None or self.decompressor.eof:
                if not data.strip(b"\0"):
                    return  # zero padding after the last member, as some writers add
                self.decompressor = self.new_decompressor()
            self.out += self.decompressor.decompress(data)
            data = self.decompressor.unused_data if self.decompressor.eof else b""

    def close(self) -> None:
        self.fh.close()


def decoders(open_binary: Callable[[], IO[bytes]]) -> list[Callable[[IO[bytes]], Any]]:
    """Decoders to try in order, chosen from the file's magic bytes."""
    with open_binary() as fh:
        head = fh.read(4)
    kind = next((name for magic, name in MAGIC.items() if head.startswith(magic)), "plain")
    if kind == "lz4":
        import lz4.frame

        return [lambda fh: Decoded(fh, lz4.frame.LZ4FrameDecompressor)]
    if kind == "zstd":
        import zstandard

        return [lambda fh: Decoded(fh, lambda: zstandard.ZstdDecompressor().decompressobj())]
    if kind == "bz2":
        return [lambda fh: Decoded(fh, bz2.BZ2Decompressor)]
    if kind == "gzip":  # warcio reads per-record gzip itself; a whole-file gzip needs a stream
        return [lambda fh: fh, lambda fh: Decoded(fh, lambda: zlib.decompressobj(16 + zlib.MAX_WBITS))]
    return [lambda fh: fh]
