"""附件: the refusal notice, a photo of the form a window would not take, a department's written answer.

A citizen attaches up to MAX_FILES files to a filing or to 补充材料 (JPEG, PNG, HEIC from phones, PDF; MAX_BYTES each);
a department's reply and the office's own answer may carry files too. Every file is judged by its content, never by
its name: a file whose content is none of these, or not what its name or declared type says, is refused with a
message naming it. Images are decoded and encoded again with Pillow, upright and without their metadata (EXIF, with
its GPS position; XMP; comments), at most MAX_SIDE pixels on their long side, HEIC as JPEG so every browser shows
it; each gets a thumbnail. A PDF must open (and not ask for a password); it is kept as sent and only ever served as
a download.

Who may see a file (`visible_to_citizen`, `find`): staff who may see the case (`tickets.access`); the citizen, with
the tracking number and the query code, their own files, the office's answer's, and a reply's once the office
approved that reply (`publish_reply`). Bytes live in `tickets.storage`.
"""
from __future__ import annotations

import hashlib
import io
import unicodedata
import warnings
from urllib.parse import quote
from dataclasses import dataclass
from datetime import datetime, timedelta

import pillow_heif
import sqlalchemy as sa
from flask import Response, send_file
from flask_babel import lazy_gettext as _l
from PIL import Image, ImageOps
from pypdf import PdfReader

from . import clock, storage
from .errors import ValidationFailed
from .models import Attachment, AttachmentSource, Event

pillow_heif.register_heif_opener()

FIELD = "files"                   # the field: of the payload, and of the error that refuses a file
PART = "files[]"                  # the multipart parts that carry the files (forms and the API)
MAX_FILES = 5                     # per filing, 补充材料, reply or answer
MAX_BYTES = 10 * 1024 * 1024      # per file, as sent
CITIZEN_FILES_PER_CASE = 20       # a citizen's files on one case, all submissions together
MAX_PIXELS = 60_000_000           # an image larger than this is refused before it is decoded (a 48-megapixel phone
                                  # photo passes)
MAX_SIDE = 4096                   # a kept image's long side at most (a page photographed stays readable)
# A side longer than this is refused before decoding too: Pillow keeps a pointer per row, so a 1 x 59,000,000 PNG
# (within MAX_PIXELS, 114 KB on disk) took 600 MB to decode. A phone's panorama (about 12,000 x 3,000) passes.
MAX_DECODED_SIDE = 40_000
THUMB_SIDE = 320
JPEG_QUALITY = 85
# The largest multipart request a view taking files accepts: the files and the form's text around them.
REQUEST_MAX = MAX_FILES * MAX_BYTES + 512 * 1024
HELD_FOR = timedelta(days=1)      # a file the public form kept while the citizen corrected another field
NAME_MAX = 100


@dataclass(frozen=True)
class FileType:
    content_type: str
    extension: str           # of the kept file
    label: object
    names: frozenset         # extensions that claim this type
    declared: frozenset      # declared content types that claim it


TYPES = {
    "jpeg": FileType("image/jpeg", ".jpg", _l("JPEG image"), frozenset({".jpg", ".jpeg", ".jpe", ".jfif"}),
                     frozenset({"image/jpeg", "image/pjpeg", "image/jpg"})),
    "png": FileType("image/png", ".png", _l("PNG image"), frozenset({".png"}), frozenset({"image/png"})),
    # kept as JPEG: few browsers show HEIC
    "heic": FileType("image/jpeg", ".jpg", _l("HEIC photo"), frozenset({".heic", ".heif"}),
                     frozenset({"image/heic", "image/heif", "image/heic-sequence", "image/heif-sequence"})),
    "pdf": FileType("application/pdf", ".pdf", _l("PDF document"), frozenset({".pdf"}),
                    frozenset({"application/pdf", "application/x-pdf"})),
}
SOURCE_LABELS = {AttachmentSource.citizen.value: _l("from the citizen"),
                 AttachmentSource.reply.value: _l("with the department's reply"),
                 AttachmentSource.answer.value: _l("with the office's answer"),
                 AttachmentSource.evidence.value: _l("evidence of an appeal")}
# What the file input offers (the server decides by content anyway).
ACCEPT = "image/jpeg,image/png,image/heic,image/heif,.heic,.heif,application/pdf"
HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"})
PILLOW_FORMATS = {"jpeg": {"JPEG", "MPO"}, "png": {"PNG"}, "heic": {"HEIF"}}


class Refused(Exception):
    """One file that cannot be kept, and why (names the file)."""


@dataclass(frozen=True)
class Incoming:
    """A file as it arrived: the name and type the sender gave, and its bytes (at most MAX_BYTES + 1 of them read)."""

    name: str
    declared_type: str | None
    data: bytes


@dataclass(frozen=True)
class Checked:
    """A file fit to keep: re-encoded when it is an image."""

    name: str
    content_type: str
    data: bytes
    thumbnail: bytes | None
    width: int | None
    height: int | None


def from_request(files) -> list[Incoming]:
    """The files of a multipart request's `files[]` parts (werkzeug FileStorage objects); an empty part (a file
    input left empty) is no file."""
    out = []
    for part in files:
        data = part.stream.read(MAX_BYTES + 1)
        name = part.filename or ""
        if not data and not name:
            continue
        out.append(Incoming(name=name, declared_type=part.mimetype or None, data=data))
    return out


def sniff(data: bytes) -> str | None:
    """The type of a file from its first bytes (a key of TYPES), or None."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS:
        return "heic"
    if b"%PDF-" in data[:1024]:  # the header may follow up to 1 KB of other bytes
        return "pdf"
    return None


def claimed(name: str, declared_type: str | None) -> str | None:
    """The type a file's name (its extension) or, failing that, its declared content type says it is; None when
    neither names one of TYPES (no extension, application/octet-stream)."""
    dot = name.rfind(".")
    extension = name[dot:].lower() if dot >= 0 else ""
    for kind, spec in TYPES.items():
        if extension in spec.names:
            return kind
    if extension and extension not in {"", "."}:
        return "other"
    declared = (declared_type or "").lower()
    return next((kind for kind, spec in TYPES.items() if declared in spec.declared), None)


def clean_name(name: str, kind: str) -> str:
    """The name a file is kept under: the sender's, without a path, control characters or the old extension, at most
    NAME_MAX characters, with the kept type's extension."""
    base = unicodedata.normalize("NFC", str(name or "")).replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if unicodedata.category(c)[0] != "C").strip().strip(".")
    stem = base.rsplit(".", 1)[0] if "." in base else base
    stem = stem.strip()[:NAME_MAX - 5] or str(_l("attachment"))
    return stem + TYPES[kind].extension


def _shown(name: str) -> str:
    """A sent name as a message quotes it."""
    text = "".join(c for c in unicodedata.normalize("NFC", str(name or "")) if unicodedata.category(c)[0] != "C")
    text = text.replace("\\", "/").rsplit("/", 1)[-1].strip()
    return (text[:40] + "…" if len(text) > 40 else text) or str(_l("(no name)"))


def check_one(incoming: Incoming) -> Checked:
    """The file fit to keep, or Refused with a message naming it."""
    shown = _shown(incoming.name)
    if not incoming.data:
        raise Refused(_l("“%(name)s” is empty.", name=shown))
    if len(incoming.data) > MAX_BYTES:
        raise Refused(_l("“%(name)s” is larger than 10 MB.", name=shown))
    kind = sniff(incoming.data)
    if kind is None:
        raise Refused(_l("“%(name)s” is not a JPEG, PNG or HEIC picture or a PDF document.", name=shown))
    claim = claimed(incoming.name, incoming.declared_type)
    if claim is not None and claim != kind:
        raise Refused(_l("“%(name)s” is not what its name says: its content is a %(kind)s.", name=shown,
                         kind=TYPES[kind].label))
    if kind == "pdf":
        _check_pdf(incoming.data, shown)
        return Checked(clean_name(incoming.name, kind), TYPES[kind].content_type, incoming.data, None, None, None)
    return _reencode(incoming, kind, shown)


def check(files, *, room: int = MAX_FILES) -> tuple[list[Checked], list[str]]:
    """Every file of a submission checked: the good ones, and a message for each refused one. More than `room` files
    (MAX_FILES, or what is left of a case's allowance) is one message and no file."""
    if not isinstance(files, (list, tuple)) or not all(isinstance(f, Incoming) for f in files):
        return [], [str(_l("Send files as multipart/form-data parts named “files[]”."))]
    if len(files) > room:
        return [], [str(_l("At most %(count)d files can be added here.", count=max(room, 0)))]
    good, messages = [], []
    for incoming in files:
        try:
            good.append(check_one(incoming))
        except Refused as refused:
            messages.append(str(refused.args[0]))
    return good, messages


def checked_or_refused(files, *, room: int = MAX_FILES) -> list[Checked]:
    """`check`, with any refusal a ValidationFailed on the `attachments` field (the API's and the console's way)."""
    good, messages = check(files, room=room)
    if messages:
        raise ValidationFailed(fields={FIELD: " ".join(messages)})
    return good


def _check_pdf(data: bytes, shown: str) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reader = PdfReader(io.BytesIO(data), strict=False)
            if reader.is_encrypted and not reader.decrypt(""):
                raise Refused(_l("“%(name)s” is protected by a password; save it without one and try again.",
                                 name=shown))
            pages = len(reader.pages)
    except Refused:
        raise
    except Exception:  # pypdf raises many kinds on a damaged file; none of them may become a 500
        raise Refused(_l("“%(name)s” could not be opened; the file may be damaged.", name=shown)) from None
    if pages < 1:
        raise Refused(_l("“%(name)s” could not be opened; the file may be damaged.", name=shown))


def _reencode(incoming: Incoming, kind: str, shown: str) -> Checked:
    damaged = Refused(_l("“%(name)s” could not be opened; the file may be damaged.", name=shown))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(incoming.data))
            if image.format not in PILLOW_FORMATS[kind]:
                raise damaged
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise Refused(_l("“%(name)s” has too many pixels; send a smaller picture.", name=shown))
            if max(width, height) > MAX_DECODED_SIDE:
                raise Refused(_l("“%(name)s” is too long and narrow a picture; send a smaller one.", name=shown))
            if kind == "jpeg" and max(width, height) > MAX_SIDE:
                # JPEG can decode at 1/2, 1/4 … of its size: take the smallest that keeps the long side at least 90 %
                # of MAX_SIDE (a 48-megapixel photo decodes at 12, with a quarter of the memory and time)
                least = MAX_SIDE * 9 // 10
                image.draft("RGB", (least * width // max(width, height), least * height // max(width, height)))
            image.load()
            ImageOps.exif_transpose(image, in_place=True)  # upright; no copy when there is nothing to turn
    except Refused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise Refused(_l("“%(name)s” has too many pixels; send a smaller picture.", name=shown)) from None
    except Exception:  # Pillow's decoders raise OSError, SyntaxError, ValueError, EOFError … on a damaged file
        raise damaged from None
    icc = image.info.get("icc_profile")
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        image = image.convert("RGBA" if "A" in image.mode or "transparency" in image.info else "RGB")
    image.info = {}  # EXIF, XMP, comments, text chunks: none of it is written again
    if max(image.size) > MAX_SIDE:
        image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    extra = {"icc_profile": icc} if icc else {}
    if kind == "png":
        image.save(out, "PNG", compress_level=3, **extra)  # twice as fast as the default 6, a little larger
    else:
        _flat(image).save(out, "JPEG", quality=JPEG_QUALITY, **extra)
    # made straight from the kept image (no full-size copy): its long side THUMB_SIDE
    scale = THUMB_SIDE / max(image.size)
    thumb = image if scale >= 1 else image.resize(
        (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale))), Image.Resampling.LANCZOS,
        reducing_gap=2.0)
    thumb_out = io.BytesIO()
    _flat(thumb).save(thumb_out, "JPEG", quality=75, **extra)
    return Checked(clean_name(incoming.name, kind), TYPES[kind].content_type, out.getvalue(), thumb_out.getvalue(),
                   image.size[0], image.size[1])


def _flat(image: Image.Image) -> Image.Image:
    """An image JPEG can hold: transparency laid on white."""
    if image.mode in ("RGB", "L"):
        return image
    rgba = image.convert("RGBA")
    white = Image.new("RGB", rgba.size, (255, 255, 255))
    white.paste(rgba, mask=rgba.getchannel("A"))
    return white


# --- keeping ---------------------------------------------------------------------------------------------------------

def keep(session, files: list[Checked], *, ticket_id: int | None, event_id: int | None, source: AttachmentSource,
         visible: bool, uploaded_by: int | None = None, held: str | None = None) -> list[Attachment]:
    """Store the files and add their rows to the session (no flush)."""
    store = storage.store()
    rows = []
    now = clock.now()
    for f in files:
        key = storage.new_key()
        store.put(session, key, f.data)
        thumb_key = None
        if f.thumbnail is not None:
            thumb_key = storage.new_key()
            store.put(session, thumb_key, f.thumbnail)
        row = Attachment(ticket_id=ticket_id, event_id=event_id, source=source.value, visible_to_citizen=visible,
                         name=f.name, content_type=f.content_type, size=len(f.data),
                         sha256=hashlib.sha256(f.data).hexdigest(), width=f.width, height=f.height, blob_key=key,
                         thumb_key=thumb_key, uploaded_by=uploaded_by, held=held, created_at=now)
        session.add(row)
        rows.append(row)
    return rows


def citizen_room(session, ticket_id: int) -> int:
    """How many more files the citizen may add to the case (CITIZEN_FILES_PER_CASE in all)."""
    used = session.scalar(sa.select(sa.func.count()).select_from(Attachment).where(
        Attachment.ticket_id == ticket_id, Attachment.source == AttachmentSource.citizen.value))
    return max(0, CITIZEN_FILES_PER_CASE - used)


def publish_reply(session, ticket) -> None:
    """The office approved the latest reply: its files become the citizen's to download."""
    latest = sa.select(Event.id).where(Event.ticket_id == ticket.id, Event.action == "reply") \
        .order_by(Event.id.desc()).limit(1).scalar_subquery()
    session.execute(sa.update(Attachment).where(Attachment.ticket_id == ticket.id, Attachment.event_id == latest)
                    .values(visible_to_citizen=True))


# --- held by the public form while the citizen corrects another field -------------------------------------------------

def hold(session, files: list[Checked], token: str) -> list[Attachment]:
    return keep(session, files, ticket_id=None, event_id=None, source=AttachmentSource.citizen, visible=True,
                held=token)


def held_files(session, token: str | None) -> list[Attachment]:
    if not token:
        return []
    return list(session.scalars(sa.select(Attachment).where(Attachment.held == token, Attachment.ticket_id.is_(None))
                                .order_by(Attachment.id)))


def attach_held(session, rows: list[Attachment], ticket_id: int, event_id: int) -> None:
    for row in rows:
        row.ticket_id, row.event_id, row.held = ticket_id, event_id, None


def drop(session, rows: list[Attachment]) -> None:
    """Delete these attachments and their bytes."""
    if not rows:
        return
    keys = [k for row in rows for k in (row.blob_key, row.thumb_key) if k]
    storage.store().delete(session, keys)
    session.execute(sa.delete(Attachment).where(Attachment.id.in_([row.id for row in rows])))


def purge_held(session, now: datetime) -> int:
    """Delete the files a form held longer than HELD_FOR without a filing taking them; how many."""
    rows = list(session.scalars(sa.select(Attachment).where(
        Attachment.ticket_id.is_(None), Attachment.held.is_not(None), Attachment.created_at < now - HELD_FOR)))
    drop(session, rows)
    return len(rows)


# --- who sees what -------------------------------------------------------------------------------------------------

def of_ticket(session, ticket_id: int, *, citizen: bool) -> list[Attachment]:
    query = sa.select(Attachment).where(Attachment.ticket_id == ticket_id).order_by(Attachment.id)
    if citizen:
        query = query.where(Attachment.visible_to_citizen.is_(True))
    return list(session.scalars(query))


def find(session, ticket_id: int, attachment_id: int, *, citizen: bool) -> Attachment | None:
    """The attachment when it belongs to this case and (for a citizen) is theirs to see; otherwise None."""
    row = session.get(Attachment, attachment_id)
    if row is None or row.ticket_id != ticket_id or (citizen and not row.visible_to_citizen):
        return None
    return row


def describe(row: Attachment) -> dict:
    return {"id": row.id, "name": row.name, "content_type": row.content_type, "size": row.size,
            "source": row.source, "visible_to_citizen": row.visible_to_citizen, "event_id": row.event_id,
            "has_thumbnail": row.thumb_key is not None, "is_image": row.content_type.startswith("image/"),
            "created_at": clock.iso(row.created_at)}


def download(session, ticket_id: int, attachment_id: int, *, citizen: bool) -> Response:
    """The answer to a download of one of the case's files (`?thumbnail=1`: an image's thumbnail), for a caller who
    may see the case; NotFound when the file is not the case's, not the citizen's to see, or its bytes are gone."""
    from flask import request

    from .errors import NotFound

    row = find(session, ticket_id, attachment_id, citizen=citizen)
    answer = response(session, row, thumbnail=request.args.get("thumbnail") == "1") if row is not None else None
    if answer is None:
        raise NotFound(_l("No such file on this case."))
    return answer


def response(session, row: Attachment, *, thumbnail: bool = False) -> Response | None:
    """The file (or its thumbnail) as an answer: an image shown, a PDF always downloaded; never cached, never sniffed,
    never run as a page (the site's Content-Security-Policy applies to it too). None when its bytes are missing from the store."""
    key = row.thumb_key if thumbnail else row.blob_key
    data = storage.read(session, key) if key else None
    if data is None:
        return None
    content_type = "image/jpeg" if thumbnail else row.content_type
    inline = content_type.startswith("image/")
    response = send_file(io.BytesIO(data), mimetype=content_type, as_attachment=not inline,
                         download_name=row.name if not thumbnail else "thumbnail.jpg", conditional=False, etag=False,
                         max_age=0)
    # Werkzeug's plain-ASCII fallback of a Chinese name is just the extension; give old clients a neutral name.
    fallback = f"file-{row.id}{'.jpg' if thumbnail else row.name[row.name.rfind('.'):]}"
    response.headers["Content-Disposition"] = (f"{'inline' if inline else 'attachment'}; filename=\"{fallback}\"; "
                                               f"filename*=UTF-8''{quote(row.name if not thumbnail else fallback)}")
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
