"""The MCAP layer of an episode bag: written with chunk CRCs and sequence numbers, read checked.

rosbags' MCAP writer leaves two optional MCAP fields at 0: the chunk's ``uncompressed_crc``
("not computed") and the message ``sequence``. :class:`BagWriter` is rosbags' ``Writer`` whose
MCAP storage fills both: a CRC-32 of every chunk, and the sequence number the recorder gives
each message (the step number for step topics, a per-topic counter for the others), so a
reader can tell a damaged chunk, a lost message and which step a message belongs to.

:func:`scan_mcap` streams the file with the ``mcap`` library (no footer or summary needed, so
it reads a bag cut short by a crash), checks every chunk's CRC separately (a bad chunk is
skipped and reported, the rest is read), and returns the records with their sequence numbers.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcap.records import Channel, Chunk, Footer, Message, Metadata, Schema, Statistics
from mcap.stream_reader import CRCValidationError, StreamReader, breakup_chunk
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.rosbag2.storage_mcap import McapWriter

MAX_RECORD = 256 << 20  # a corrupted length field must not allocate gigabytes
_SEQUENCE_AT = 1 + 8 + 2    # message record: opcode, length, channel id, then the sequence
_CRC_AT = 1 + 8 + 8 + 8 + 8  # chunk record: opcode, length, start, end, size, then the CRC


class _CheckedMcapStorage(McapWriter):
    """rosbags' MCAP storage that writes chunk CRCs and message sequence numbers.

    Set :attr:`sequence` before each ``write``. The two fields are patched in place into the
    records rosbags has just serialized (their offsets are fixed by the MCAP specification).
    """

    def __init__(self, path: Path, compression: Any) -> None:
        super().__init__(path, compression)
        self.sequence = 0
        self._in_write = False
        self._close_after_write = False

    def write(self, connection: Any, timestamp: int, data: bytes | memoryview) -> None:
        start = self.chunk.bio.tell()
        self._in_write = True  # a chunk rosbags closes when full is closed after the patch
        try:
            super().write(connection, timestamp, data)
        finally:
            self._in_write = False
        with self.chunk.bio.getbuffer() as buf:
            struct.pack_into("<I", buf, start + _SEQUENCE_AT, self.sequence & 0xFFFFFFFF)
        if self._close_after_write:
            self._close_after_write = False
            self.close_chunk()

    def close_chunk(self) -> None:
        if self._in_write:
            self._close_after_write = True
            return
        with self.chunk.bio.getbuffer() as buf:
            crc = zlib.crc32(buf)
        start = self.bio.tell()
        super().close_chunk()
        end = self.bio.tell()
        self.bio.seek(start + _CRC_AT)
        self.bio.write(struct.pack("<I", crc))
        self.bio.seek(end)


class BagWriter(Writer):
    """rosbags' rosbag2 ``Writer`` with :class:`_CheckedMcapStorage` as its MCAP storage."""

    STORAGE_PLUGINS = {**Writer.STORAGE_PLUGINS, StoragePlugin.MCAP: _CheckedMcapStorage}

    def write_seq(self, connection: Any, timestamp: int, data: bytes, sequence: int) -> None:
        """Write one message with its sequence number (> 0)."""
        self.storage.sequence = sequence
        self.write(connection, timestamp, data)


@dataclass
class RawMessage:
    log_time: int
    sequence: int
    data: bytes


@dataclass
class Scan:
    """What :func:`scan_mcap` found: raw messages per topic, and what is wrong with the file."""

    messages: dict[str, list[RawMessage]] = field(default_factory=dict)
    msgtypes: dict[str, str] = field(default_factory=dict)
    embedded_metadata: str = ""          # the rosbag2 metadata record (written at close)
    statistics: dict[str, int] | None = None  # message count per topic, from the summary
    complete: bool = False               # the footer was reached
    chunks: int = 0
    chunks_without_crc: int = 0
    problems: list[str] = field(default_factory=list)  # damage: the bag is not what was written
    notes: list[str] = field(default_factory=list)     # information

    def counts(self) -> dict[str, int]:
        return {t: len(v) for t, v in self.messages.items()}


class McapDamaged(ValueError):
    """Nothing readable: not an MCAP file, or damaged before its first channel."""


def scan_mcap(path: Path) -> Scan:
    """Stream ``path`` and check it (chunk CRCs, records); see the module docstring."""
    from fingergym.files import check_regular

    check_regular(path, "bag file")
    scan = Scan()
    schemas: dict[int, str] = {}
    channels: dict[int, tuple[str, str]] = {}
    with path.open("rb") as f:
        size = path.stat().st_size
        if size == 0:
            raise McapDamaged(f"{path}: the file is empty (the recorder died before its first "
                              f"flush)")
        reader = StreamReader(f, emit_chunks=True, record_size_limit=MAX_RECORD)

        def take(rec: Any) -> None:
            if isinstance(rec, Schema):
                schemas[rec.id] = rec.name
            elif isinstance(rec, Channel):
                channels[rec.id] = (rec.topic, schemas.get(rec.schema_id, ""))
                scan.msgtypes[rec.topic] = schemas.get(rec.schema_id, "")
            elif isinstance(rec, Message):
                topic, _ = channels.get(rec.channel_id, ("", ""))
                scan.messages.setdefault(topic, []).append(
                    RawMessage(rec.log_time, rec.sequence, rec.data))

        try:
            for rec in reader.records:
                if isinstance(rec, Chunk):
                    scan.chunks += 1
                    if rec.uncompressed_crc == 0:
                        scan.chunks_without_crc += 1
                    try:
                        inner = breakup_chunk(rec, validate_crc=True)
                    except CRCValidationError:
                        scan.problems.append(f"chunk {scan.chunks} (ending at byte {f.tell()}) "
                                             f"fails its CRC: its messages were skipped")
                        continue
                    except Exception as e:  # noqa: BLE001 - damaged inside
                        scan.problems.append(f"chunk {scan.chunks} (ending at byte {f.tell()}) "
                                             f"is unreadable ({type(e).__name__}): skipped")
                        continue
                    for r in inner:
                        take(r)
                elif isinstance(rec, Metadata) and rec.name == "rosbag2":
                    scan.embedded_metadata = rec.metadata.get("serialized_metadata", "")
                elif isinstance(rec, Statistics):
                    scan.statistics = {channels[c][0]: n for c, n in
                                       rec.channel_message_counts.items() if c in channels}
                elif isinstance(rec, Footer):
                    scan.complete = True
                else:
                    take(rec)
        except Exception as e:  # noqa: BLE001 - truncated or damaged: keep what was read
            pos = f.tell()
            if not scan.messages and not channels:
                raise McapDamaged(f"{path}: not a readable MCAP file ({type(e).__name__}: "
                                  f"{' '.join(str(e).split())[:200]})") from None
            if pos >= size:
                scan.notes.append("the MCAP file ends in the middle of a record; read "
                                  "everything before that")
            else:
                scan.problems.append(f"the MCAP file is damaged near byte {pos} of {size} "
                                     f"({type(e).__name__}); read everything before that")
    return scan
