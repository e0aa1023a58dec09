"""Request bodies as JSON (images as base64 or data URLs) or multipart/form-data (images as file parts), parsed in
memory: Starlette's own form parser spools uploads above 1 MB to temporary files, and no image may touch disk."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from fastapi import Request
from pydantic import BaseModel, ValidationError
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from control_plane.core.errors import ApiError
from control_plane.services.images import decode_image_string

MAX_PARTS = 256


@dataclass
class Part:
    name: str
    filename: str | None
    content_type: str | None
    data: bytearray = field(default_factory=bytearray)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it passes `limit` (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(
            "payload_too_large", f"the body is {declared} bytes; the limit is {limit}", details={"limit": limit}
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError("payload_too_large", f"the body exceeds {limit} bytes", details={"limit": limit})
        chunks.append(chunk)
    return b"".join(chunks)


def parse_multipart(body: bytes, content_type: str) -> list[Part]:
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise ApiError("invalid_request", "multipart body without a boundary")
    parts: list[Part] = []
    headers: dict[bytes, bytes] = {}
    state = {"field": b"", "value": b""}

    def on_part_begin():
        headers.clear()

    def on_header_field(data, start, end):
        state["field"] += data[start:end]

    def on_header_value(data, start, end):
        state["value"] += data[start:end]

    def on_header_end():
        headers[state["field"].lower()] = state["value"]
        state["field"], state["value"] = b"", b""

    def on_headers_finished():
        if len(parts) >= MAX_PARTS:
            raise ApiError("invalid_request", f"more than {MAX_PARTS} multipart parts")
        _, disp = parse_options_header(headers.get(b"content-disposition", b""))
        name = disp.get(b"name", b"").decode("utf-8", "replace")
        filename = disp.get(b"filename")
        ctype = headers.get(b"content-type")
        parts.append(
            Part(
                name,
                filename.decode("utf-8", "replace") if filename else None,
                ctype.decode("latin-1") if ctype else None,
            )
        )

    def on_part_data(data, start, end):
        parts[-1].data += data[start:end]

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as exc:
        raise ApiError("invalid_request", f"malformed multipart body: {exc}") from None
    return parts


def validation_error(raw_errors: list[dict]) -> ApiError:
    """Pydantic's errors without the offending input (it may be megabytes of image)."""
    errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in raw_errors]
    if any(e["type"] == "json_invalid" for e in errors):
        return ApiError("invalid_json", "the body is not valid JSON")
    return ApiError("invalid_request", "the request does not match the schema", details={"errors": errors})


def _load_json(body: bytes):
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # nesting past the parser's depth too
        raise ApiError("invalid_json", "the body is not valid JSON") from None


async def parse_json(request: Request, limit: int, model: type[BaseModel]) -> BaseModel:
    """A JSON-only body (no images), read within `limit` when the route calls it: after its dependencies (a
    `body: Model` parameter would make FastAPI read the whole body, whatever its size, before authentication)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        raise ApiError("unsupported_media_type", "send application/json", details={"content_type": media})
    payload = _load_json(await read_body(request, limit))
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise validation_error(exc.errors()) from None


@dataclass
class ParsedBody:
    options: BaseModel
    images: dict[str, bytes]  # single-image fields
    image_lists: dict[str, list[bytes | ApiError]]  # multi-image fields: a bad item stays in its slot


async def parse_body(
    request: Request,
    limit: int,
    json_model: type[BaseModel],
    options_model: type[BaseModel],
    single: tuple[str, ...] = (),
    multiple: tuple[str, ...] = (),
) -> ParsedBody:
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";")[0].strip().lower()
    if media not in ("application/json", "multipart/form-data"):
        raise ApiError(
            "unsupported_media_type",
            "send application/json (base64 or data-URL images) or multipart/form-data (file uploads)",
            details={"content_type": media},
        )
    body = await read_body(request, limit)
    if media == "application/json":
        payload = _load_json(body)
        try:
            model = json_model.model_validate(payload)
        except ValidationError as exc:
            raise validation_error(exc.errors()) from None
        images = {name: decode_image_string(getattr(model, name), name) for name in single}
        lists = {}
        for name in multiple:
            slots: list[bytes | ApiError] = []
            for i, value in enumerate(getattr(model, name)):
                try:
                    slots.append(decode_image_string(value, f"{name}[{i}]"))
                except ApiError as exc:
                    slots.append(exc)
            lists[name] = slots
        options = options_model.model_validate(model.model_dump(include=set(options_model.model_fields)))
        return ParsedBody(options, images, lists)

    parts = parse_multipart(body, content_type)
    fields: dict[str, str] = {}
    images, lists = {}, {name: [] for name in multiple}
    for part in parts:
        if part.name in single:
            images[part.name] = bytes(part.data)
        elif part.name in multiple:
            lists[part.name].append(bytes(part.data))
        else:
            try:
                fields[part.name] = part.data.decode("utf-8")
            except UnicodeDecodeError:
                raise ApiError("invalid_request", f"form field `{part.name}` is not UTF-8 text") from None
    missing = [name for name in single if name not in images] + [name for name in multiple if not lists[name]]
    if missing:
        raise ApiError(
            "invalid_request",
            "missing image part(s): " + ", ".join(missing),
            details={"errors": [{"loc": ["body", m], "msg": "Field required", "type": "missing"} for m in missing]},
        )
    try:
        options = options_model.model_validate(fields)
    except ValidationError as exc:
        raise validation_error(exc.errors()) from None
    return ParsedBody(options, images, lists)


def request_body_doc(json_model: type[BaseModel], single=(), multiple=()) -> dict:
    """The OpenAPI requestBody for an endpoint that takes JSON or multipart."""
    json_schema = json_model.model_json_schema()
    form = {k: v for k, v in json_schema["properties"].items() if k not in single and k not in multiple}
    for name in single:
        form[name] = {"type": "string", "format": "binary"}
    for name in multiple:
        form[name] = {"type": "array", "items": {"type": "string", "format": "binary"}}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": json_schema},
                "multipart/form-data": {
                    "schema": {"type": "object", "properties": form, "required": [*single, *multiple]}
                },
            },
        }
    }
