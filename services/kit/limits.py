"""Size limits every service checks the same way: uploads, byte payloads and text lengths.

Each helper keeps the status, `param`, `code` and message a service has always answered; the
message is a `str.format` template over `name` (what the message calls the input, `param` by
default), `size` (its length) and `limit`.
"""

from __future__ import annotations

from starlette.datastructures import UploadFile

from services.kit.errors import ApiError

TEXT_TOO_LONG = "{name} is {size} characters; the limit is {limit}"
BYTES_TOO_LARGE = "audio file is {size} bytes; the limit is {limit}"
UPLOAD_TOO_LARGE = "audio file exceeds the limit of {limit} bytes"


def check_limit(
    size: int,
    limit: int,
    *,
    status: int,
    param: str,
    code: str,
    message: str,
    name: str | None = None,
) -> None:
    """Raise `status` with the error envelope when `size` is over `limit`."""
    if size > limit:
        text = message.format(name=name or param, size=size, limit=limit)
        raise ApiError(status, text, param=param, code=code)


def check_text_length(
    text: str,
    limit: int,
    param: str,
    *,
    code: str = "text_too_long",
    name: str | None = None,
    message: str = TEXT_TOO_LONG,
) -> str:
    """`text` unchanged, or 400 when it is longer than `limit` characters."""
    check_limit(len(text), limit, status=400, param=param, code=code, message=message, name=name)
    return text


def check_size(
    data: bytes, limit: int, code: str = "file_too_large", message: str = BYTES_TOO_LARGE
) -> bytes:
    """`data` unchanged, or 413 (param `file`) when it holds more than `limit` bytes."""
    check_limit(len(data), limit, status=413, param="file", code=code, message=message)
    return data


async def read_upload(
    upload: UploadFile, limit: int, code: str = "file_too_large", message: str = UPLOAD_TOO_LARGE
) -> bytes:
    """The `file` upload's bytes; 413 beyond `limit` (reads at most one byte past it)."""
    return check_size(await upload.read(limit + 1), limit, code, message)
