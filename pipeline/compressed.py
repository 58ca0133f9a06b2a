"""Compressed crawl files read so that a cut or corrupt file still gives what precedes the damage.

warcio reads per-record gzip itself; other codecs (LZ4, zstd, bz2, a whole-file gzip) are decoded
here block by block, and both paths report a stream that ends early instead of ending quietly.
"""
from __future__ import annotations

import bz2
import time
import zlib
from dataclasses import dataclass
from io import BytesIO
from typing import IO, Any, Callable

from warcio.bufferedreaders import DecompressingBufferedReader
from warcio.exceptions import ArchiveLoadFailed
from warcio.utils import BUFF_SIZE

MAGIC = {b"\x04\x22\x4d\x18": "lz4", b"\x28\xb5\x2f\xfd": "zstd", b"BZh": "bz2", b"\x1f\x8b": "gzip"}


MAX_LINE = 64 * 2**10  # a WARC header line is short; warcio's readline would grow without bound


class MemberReader(DecompressingBufferedReader):
    """warcio's reader, made to notice what it lets pass silently: a gzip member cut short at the end
    of the file (the iteration just ends), and corrupt data inside a member (it prints it, reads on).
    It also charges every byte it gives out to the file's `budget`, caps lines at MAX_LINE, and
    takes bytes back (`push_back`) when a record turns out to have read into the next one."""

    cut_short = False
    budget: Budget | None = None

    def _init_decomp(self, decomp_type):
        super()._init_decomp(decomp_type)
        self.fed = False  # whether this member's decompressor got any data

    def _decompress(self, data):
        if self.decompressor is not None and data:
            self.fed = True
            if self.num_block_read:  # mid-member: let zlib.error out
                return self.decompressor.decompress(data)
        return super()._decompress(data)  # its first block: warcio tells gzip from plain data here

    def _process_read(self, data):
        super()._process_read(data)
        if self.budget is not None and self.buff is not None:
            self.budget.spend(self.buff_size)

    def readline(self, length=None):
        return super().readline(MAX_LINE if length is None else min(length, MAX_LINE))

    def push_back(self, data: bytes) -> None:
        """Make `data` the next bytes read, before what is still buffered."""
        rest = self.buff.read() if self.buff is not None else b""
        self.buff, self.buff_size = BytesIO(data + rest), len(data) + len(rest)

    def close_decompressor(self):
        if self.decompressor is not None and self.fed and not self.decompressor.eof:
            self.cut_short = True
        super().close_decompressor()


class FileLimit(Exception):
    """A file past one of its limits; `reason` is the drop reason of the row that ends it."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


@dataclass
class Budget:
    """What reading one file may cost, in decompressed bytes and in seconds. Charged as data is
    decoded, so that a decompression bomb or a file that never ends stops with a reason, early."""

    max_bytes: int | None = None
    max_seconds: float | None = None
    used: int = 0

    def __post_init__(self):
        self.started = time.monotonic()

    def spend(self, size: int) -> None:
        self.used += size
        if self.max_bytes is not None and self.used > self.max_bytes:
            raise FileLimit("read:too_large", f"the file decompresses to over {self.max_bytes} bytes")
        if self.max_seconds is not None and time.monotonic() - self.started > self.max_seconds:
            raise FileLimit("read:timeout", f"reading the file took over {self.max_seconds:g} s")


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


OUT_BLOCK = 2**20  # decoded bytes handed on per decompressor call: a bomb is met a block at a time


class Decoded:
    """A compressed file decoded block by block with the codec's decompressor objects, one per
    member or frame: what comes before a cut still reaches warcio (gzip.open and friends would
    raise and lose their buffer), then the cut raises StreamCut. No call decodes more than about
    OUT_BLOCK bytes, however small the input that stands for them."""

    def __init__(self, fh: IO[bytes], new_decompressor: Callable[[], Any]):
        self.fh, self.new_decompressor, self.decompressor = fh, new_decompressor, None
        self.pending = b""  # compressed bytes read from the file, not yet given to a decompressor
        self.out, self.position = b"", 0  # decoded bytes, and how many of them were read

    def read(self, size: int = -1) -> bytes:
        if self.position == len(self.out):
            self.out, self.position = self._decode(), 0
        end = len(self.out) if size is None or size < 0 else min(len(self.out), self.position + size)
        chunk, self.position = self.out[self.position:end], end
        return chunk

    def _decode(self) -> bytes:
        """The next decoded bytes; b"" at the end of the file."""
        while True:
            decompressor = self.decompressor
            if decompressor is not None and not decompressor.eof and (self.pending or not decompressor.needs_input):
                out = decompressor.decompress(self.pending, OUT_BLOCK)
                self.pending = (decompressor.unused_data or b"") if decompressor.eof else b""
                if out:
                    return out
            elif not self.pending:
                self.pending = self.fh.read(BUFF_SIZE)
                if not self.pending:
                    if decompressor is not None and not decompressor.eof:
                        raise StreamCut("the compressed file ends before its end marker")
                    return b""
            elif not self.pending.strip(b"\0"):
                self.pending = b""  # zero padding after the last member, as some writers add
            else:
                self.decompressor = self.new_decompressor()

    def close(self) -> None:
        self.fh.close()


class _Zlib:
    """zlib's decompressor with the interface of bz2's and lz4's: input it could not yet use is kept."""

    def __init__(self):
        self.inner, self.tail, self.full = zlib.decompressobj(16 + zlib.MAX_WBITS), b"", False

    def decompress(self, data: bytes, max_length: int) -> bytes:
        out = self.inner.decompress(self.tail + data, max_length)
        self.tail, self.full = self.inner.unconsumed_tail, len(out) == max_length  # full: maybe more to come
        return out

    needs_input = property(lambda self: not self.tail and not self.full)
    eof = property(lambda self: self.inner.eof)
    unused_data = property(lambda self: self.inner.unused_data)


class _Zstd:
    """zstandard's decompressor, which takes no output limit: it is fed small slices instead, as
    four input bytes can stand for 128 kB (an RLE block), so each slice gives at most ~8 MB."""

    SLICE = 256

    def __init__(self):
        import zstandard

        self.inner, self.tail = zstandard.ZstdDecompressor().decompressobj(), b""

    def decompress(self, data: bytes, max_length: int) -> bytes:
        data, out, size, at = memoryview(self.tail + data), [], 0, 0
        while at < len(data) and not self.inner.eof and size < max_length:
            out.append(self.inner.decompress(data[at:at + self.SLICE]))
            at, size = at + self.SLICE, size + len(out[-1])
        self.tail = bytes(data[at:]) if not self.inner.eof else b""
        if self.inner.eof:
            self.leftover = self.inner.unused_data + bytes(data[at:])
        return b"".join(out)

    needs_input = property(lambda self: not self.tail)
    eof = property(lambda self: self.inner.eof)
    unused_data = property(lambda self: self.leftover if self.inner.eof else b"")


def decoders(open_binary: Callable[[], IO[bytes]]) -> list[Callable[[IO[bytes]], Any]]:
    """Decoders to try in order, chosen from the file's magic bytes."""
    with open_binary() as fh:
        head = fh.read(4)
    kind = next((name for magic, name in MAGIC.items() if head.startswith(magic)), "plain")
    if kind == "lz4":
        import lz4.frame

        return [lambda fh: Decoded(fh, lz4.frame.LZ4FrameDecompressor)]
    if kind == "zstd":
        return [lambda fh: Decoded(fh, _Zstd)]
    if kind == "bz2":
        return [lambda fh: Decoded(fh, bz2.BZ2Decompressor)]
    if kind == "gzip":  # warcio reads per-record gzip itself; a whole-file gzip needs a stream
        return [lambda fh: fh, lambda fh: Decoded(fh, _Zlib)]
    return [lambda fh: fh]
