"""A bounded, streaming multipart/form-data reader for the colorize endpoint.

Starlette's form parser spools files of any size to disk and limits only text fields; here every part has its own
byte limit, checked while the body streams in, so an oversize upload is refused (413) after reading at most the
limit plus one network chunk, and nothing unbounded is ever held in memory or written to disk.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header


class FormError(ValueError):
    """The body is not an acceptable form. ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Part:
    name: str
    filename: str | None
    data: bytearray = field(default_factory=bytearray)


@dataclass(frozen=True)
class FieldSpec:
    limit: int  # bytes
    is_file: bool  # documented kind; text fields may also arrive as files (curl -F hints=@h.json)


async def read_form(content_type: str, stream: AsyncIterator[bytes], fields: dict[str, FieldSpec],
                    max_total: int) -> dict[str, Part]:
    """Parse a multipart body into ``{name: Part}``; only the names in ``fields``, each at most once, each within
    its limit; the whole body within ``max_total`` bytes. Raises :class:`FormError` (400, 413 or 415)."""
    ctype, params = parse_options_header(content_type)
    if ctype != b"multipart/form-data":
        raise FormError(415, "expected a multipart/form-data body (fields: " + ", ".join(fields) + ")")
    boundary = params.get(b"boundary")
    if not boundary:
        raise FormError(400, "multipart body without a boundary")

    parts: dict[str, Part] = {}
    state: dict = {"part": None, "header_name": b"", "header_value": b"", "disposition": b"", "ended": False}

    def on_part_begin() -> None:
        state.update(part=None, disposition=b"")

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["header_name"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["header_value"] += data[start:end]

    def on_header_end() -> None:
        if state["header_name"].strip().lower() == b"content-disposition":
            state["disposition"] = state["header_value"]
        state.update(header_name=b"", header_value=b"")

    def on_headers_finished() -> None:
        _, opts = parse_options_header(state["disposition"])
        raw = opts.get(b"name")
        if raw is None:
            raise FormError(400, "a form part has no name")
        name = raw.decode("utf-8", "replace")
        if name not in fields:
            raise FormError(400, f"unknown form field {name[:40]!r} (expected: {', '.join(fields)})")
        if name in parts:
            raise FormError(400, f"form field {name!r} given more than once")
        fn = opts.get(b"filename")
        part = Part(name, fn.decode("utf-8", "replace") if fn is not None else None)
        parts[name] = part
        state["part"] = part

    def on_part_data(data: bytes, start: int, end: int) -> None:
        part: Part | None = state["part"]
        if part is None:
            return
        limit = fields[part.name].limit
        if len(part.data) + (end - start) > limit:
            raise FormError(413, f"form field {part.name!r} is larger than the limit of {limit} bytes")
        part.data += data[start:end]

    def on_end() -> None:
        state["ended"] = True

    callbacks = {"on_part_begin": on_part_begin, "on_header_field": on_header_field,
                 "on_header_value": on_header_value, "on_header_end": on_header_end,
                 "on_headers_finished": on_headers_finished, "on_part_data": on_part_data, "on_end": on_end}
    try:
        parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    except FormParserError as e:
        raise FormError(400, f"bad multipart boundary ({e})") from e
    total = 0
    try:
        async for chunk in stream:
            total += len(chunk)
            if total > max_total:
                raise FormError(413, f"request body is larger than the limit of {max_total} bytes")
            parser.write(chunk)
        parser.finalize()
    except FormParserError as e:
        raise FormError(400, f"malformed multipart body ({str(e)[:100]})") from e
    if not state["ended"]:
        raise FormError(400, "malformed multipart body (truncated: no closing boundary)")
    return parts
