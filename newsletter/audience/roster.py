"""The subscriber roster as a whole: CSV import, listing and CSV export.

An import streams the file once: each line is decoded, parsed and validated
in Python (the same address rules as a signup), valid rows go to the
``roster_staging`` table with ``COPY``, and one set-based SQL statement
merges them into ``subscribers`` (see ``sql/queries/roster.sql``). Memory
stays flat whatever the file size: nothing holds more than one batch.

Korean Excel saves "CSV" in CP949 (a superset of EUC-KR); other tools write
UTF-8 with or without a BOM. The encoding is detected by reading the whole
file once as UTF-8 (cheap next to the import itself).
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import hmac
import io
import re
import unicodedata
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import IO, Any, Literal
from zoneinfo import ZoneInfo

from newsletter.audience.subscribers import MAX_NAME_LENGTH
from newsletter.core import i18n
from newsletter.core.addresses import MAX_EMAIL_LENGTH, normalise_email
from newsletter.core.db import QUERIES, Connection, Database, Record
from newsletter.core.errors import InvalidInput, Value, field_name
from newsletter.core.i18n import N_, Term
from newsletter.core.kinds import SUBSCRIBER_STATUSES
from newsletter.core.settings import Settings
from newsletter.core.text import is_fit
from newsletter.ops import audit

Mode = Literal["confirmed", "invite"]
MODES: tuple[Mode, ...] = ("confirmed", "invite")
COLUMNS = ("email", "name", "subscribed_at", "source")

MAX_LINE_CHARS = 64 * 1024  # a real row is well under 1 KB; longer lines are reported
MAX_SOURCE_LENGTH = 500
MAX_REPORTED = 1000  # lines listed per category in a report; the counts are always complete
BATCH_ROWS = 5000
INVITE_PRIORITY = 3  # after residents' own confirmations (0), notices (1) and test sends (2)
SNIFF_BYTES = 1024 * 1024

# Header cells we recognise, compared after lower-casing and dropping spaces,
# dashes and underscores (Korean office files use Korean headers).
HEADER_ALIASES: dict[str, str] = {
    **dict.fromkeys(
        ("email", "emailaddress", "mail", "이메일", "이메일주소", "메일", "전자우편", "메일주소"),
        "email",
    ),
    **dict.fromkeys(("name", "fullname", "이름", "성명", "성함"), "name"),
    **dict.fromkeys(
        (
            "subscribedat",
            "subscribed",
            "consentedat",
            "consentdate",
            "구독일",
            "구독일시",
            "가입일",
            "가입일시",
            "동의일",
            "동의일시",
        ),
        "subscribed_at",
    ),
    **dict.fromkeys(("source", "출처", "경로", "수집경로", "동의경로", "가입경로"), "source"),
}

SKIP_REASONS = {
    "suppressed": N_(
        "발송 제외 목록에 있는 주소입니다 (삭제·반송·신고). 가져오기로 되살릴 수 없습니다."
    ),
    "departed": N_("탈퇴 후 개인정보를 파기한 주민입니다. 본인만 다시 구독할 수 있습니다."),
    "unsubscribed": N_("수신을 거부한 주민입니다. 본인만 다시 구독할 수 있습니다."),
    "lapsed": N_("동의를 다시 확인하지 않아 만료된 구독입니다. 본인만 되살릴 수 있습니다."),
}
TOO_LONG = N_("%(name)s은(는) %(limit)s자 이하로 써 주세요.")

Progress = Callable[[int, int], None]


@dataclass
class LineReport:
    """Why one line was not imported: a message id and its values (core/i18n)."""

    line: int
    message: str
    values: dict[str, Value] = field(default_factory=dict)

    def text(self, language: str) -> str:
        return i18n.say(self.message, language, self.values)

    @property
    def reason(self) -> str:
        return self.text("en")

    def as_dict(self, language: str = "en") -> dict[str, Any]:
        return {"line": self.line, "reason": self.text(language)}


@dataclass
class ImportReport:
    mode: Mode
    encoding: str
    header: bool
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    skipped: int = 0
    invalid: int = 0
    invited: int = 0
    errors: list[LineReport] = field(default_factory=list)
    skipped_rows: list[LineReport] = field(default_factory=list)

    def as_dict(self, language: str = "en") -> dict[str, Any]:
        """The report, its reasons said in ``language`` (the API: English)."""
        return {
            "mode": self.mode,
            "encoding": self.encoding,
            "header": self.header,
            "rows": self.rows,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "duplicates": self.duplicates,
            "skipped": self.skipped,
            "invalid": self.invalid,
            "invited": self.invited,
            "errors": [e.as_dict(language) for e in self.errors],
            "errors_truncated": self.invalid > len(self.errors),
            "skipped_rows": [s.as_dict(language) for s in self.skipped_rows],
            "skipped_truncated": self.skipped > len(self.skipped_rows),
        }


# --- decoding and parsing -------------------------------------------------------


# A workbook uploaded instead of the CSV saved from it (the commonest mistake):
# .xlsx/.ods are ZIP files, .xls an OLE2 compound document.
SPREADSHEET_MAGIC = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")


def _refuse_spreadsheet(binary: IO[bytes]) -> None:
    start = binary.tell()
    head = binary.read(8)
    binary.seek(start)
    if head.startswith(SPREADSHEET_MAGIC):
        raise InvalidInput(
            N_(
                "엑셀 같은 스프레드시트 파일입니다. 엑셀에서 ‘CSV UTF-8’로 저장한 파일을 "
                "올려 주세요."
            ),
            field="file",
        )


def detect_encoding(binary: IO[bytes]) -> str:
    """``utf-8-sig`` with a BOM, ``utf-8`` if the whole file decodes, else ``cp949``.

    Reads the file once in 1 MB chunks and rewinds it.
    """
    start = binary.tell()
    head = binary.read(3)
    if head == codecs.BOM_UTF8:
        binary.seek(start)
        return "utf-8-sig"
    decoder = codecs.getincrementaldecoder("utf-8")()
    chunk = head
    encoding = "utf-8"
    try:
        while chunk:
            decoder.decode(chunk)
            chunk = binary.read(SNIFF_BYTES)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        encoding = "cp949"
    binary.seek(start)
    return encoding


def _header_key(cell: str) -> str:
    return re.sub(r"[\s_\-]", "", cell.strip().lstrip("\ufeff").lower())


def _unquote_formula(cell: str) -> str:
    """Undo our own export's formula guard ('=x → =x) so a round trip is lossless."""
    if len(cell) > 1 and cell[0] == "'" and cell[1] in FORMULA_STARTS:
        return cell[1:]
    return cell


_DATE_SEPARATORS = re.compile(r"[./]")
_DATE_PARTS = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(.*)")


@lru_cache(maxsize=65536)
def _parse_when(text: str, timezone: str) -> datetime:
    """ISO 8601 and the forms Korean spreadsheets write: 2024.3.5, 2024/03/05 14:00."""
    cleaned = _DATE_SEPARATORS.sub("-", text.strip().rstrip("."))
    cleaned = cleaned.replace("- ", "-")
    match = _DATE_PARTS.fullmatch(cleaned)
    if match:
        year, month, day, rest = match.groups()
        cleaned = f"{year}-{int(month):02d}-{int(day):02d}{rest}"
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        raise InvalidInput(
            N_("구독일 %(text)s은(는) 날짜가 아닙니다 (예: 2024-03-05 또는 2024-03-05 14:00)."),
            text=repr(text[:40]),
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(timezone))
    return moment


def _clean_text(raw: str, limit: int, what: str) -> str | None:
    """The rules of :func:`newsletter.subscribers.clean_name`, fast on ordinary text."""
    value = raw.strip()
    if not value:
        return None
    if value[0] == "'":
        value = _unquote_formula(value)
    if not value.isascii():
        value = unicodedata.normalize("NFC", value)
    if len(value) > limit:
        raise InvalidInput(TOO_LONG, name=field_name(what), limit=limit)
    # isprintable() is False for every Cc/Cf/Zl/Zp character (and for some
    # allowed ones too, which the exact check below lets through).
    if not value.isprintable() and (
        not is_fit(value) or any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in value)
    ):
        raise InvalidInput(N_("%(name)s에 쓸 수 없는 제어 문자가 있습니다."), name=field_name(what))
    return value


@lru_cache(maxsize=1024)
def _clean_source(raw: str) -> str | None:
    return _clean_text(raw, MAX_SOURCE_LENGTH, "source")  # few distinct values per file


StagedRow = tuple[int, str, str, str, str | None, datetime | None, str | None]


class CsvRows:
    """Streams one CSV file as validated staging rows; bad lines go to ``errors``."""

    def __init__(
        self,
        binary: IO[bytes],
        *,
        encoding: str,
        settings: Settings,
        now: datetime,
        address_key: str,
    ) -> None:
        self.binary = binary
        self.encoding = encoding
        self.secret = address_key.encode()
        # UTF-8 was checked over the whole file; only CP949 decoding can be lossy.
        self.lossy = codecs.lookup(encoding).name not in ("utf-8", "utf-8-sig")
        self.timezone = settings.timezone
        self.latest_allowed = now + timedelta(days=1)
        self.text = io.TextIOWrapper(binary, encoding=encoding, errors="replace", newline="")
        self.physical = 0  # physical lines consumed so far
        self.record_start = 1
        self.errors: list[LineReport] = []
        self.invalid = 0
        self.rows = 0
        self.header = False
        self.positions: dict[str, int] = {name: index for index, name in enumerate(COLUMNS)}
        self.width = 1

    def error(self, line: int, message: str, **values: Value) -> None:
        self.invalid += 1
        if len(self.errors) < MAX_REPORTED:
            self.errors.append(LineReport(line, message, values))

    def _lines(self) -> Iterator[str]:
        """Physical lines for the csv module, with overlong ones cut out and reported."""
        readline = self.text.readline
        while True:
            line = readline(MAX_LINE_CHARS)
            if not line:
                return
            self.physical += 1
            if len(line) == MAX_LINE_CHARS and not line.endswith(("\n", "\r")):
                while line and not line.endswith(("\n", "\r")):  # drain the rest of the line
                    line = readline(MAX_LINE_CHARS)
                self.error(self.physical, N_("줄이 %(limit)s자보다 깁니다."), limit=MAX_LINE_CHARS)
                self.record_start = self.physical + 1
                continue
            yield line

    def __iter__(self) -> Iterator[StagedRow]:
        reader = csv.reader(self._lines(), strict=False)
        first = True
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                self.error(
                    self.record_start, N_("CSV 형식이 깨진 줄입니다 (%(detail)s)."), detail=str(exc)
                )
                self.record_start = self.physical + 1
                continue
            line = self.record_start
            self.record_start = self.physical + 1
            if self.physical > line and any("\n" in cell or "\r" in cell for cell in cells):
                # A quote left open reads every line after it into one cell: no
                # field of a roster holds a line break, so say what happened
                # instead of a misleading reason for one row and silence for the rest.
                self.rows += 1
                self.error(
                    line,
                    N_(
                        '따옴표(")가 닫히지 않아 %(first)s번째 줄부터 %(last)s번째 줄까지가 '
                        "한 줄로 읽혔습니다. 따옴표를 고친 뒤 다시 가져오세요 (이미 들어간 "
                        "주소는 그대로 둡니다)."
                    ),
                    first=line,
                    last=self.physical,
                )
                continue
            if not any(cell.strip() for cell in cells):
                continue  # blank lines are not rows
            if first:
                first = False
                if self._read_header(cells):
                    continue
            self.rows += 1
            staged = self._row(line, cells)
            if staged is not None:
                yield staged

    def _read_header(self, cells: list[str]) -> bool:
        keys = [HEADER_ALIASES.get(_header_key(cell)) for cell in cells]
        if any(keys):
            if "email" not in keys:
                raise InvalidInput(
                    N_(
                        "머리글 줄에 이메일 열이 없습니다. 첫 줄에 ‘email’ 또는 ‘이메일’ 열을 "
                        "넣어 주세요."
                    ),
                    field="file",
                )
            self.positions = {}
            for index, key in enumerate(keys):
                if key is not None and key not in self.positions:
                    self.positions[key] = index
            self.width = len(cells)
            self.header = True
            return True
        self.positions = {name: index for index, name in enumerate(COLUMNS)}
        self.width = 1  # without a header only the address is required
        return False

    def _row(self, line: int, cells: list[str]) -> StagedRow | None:
        # The hot loop of an import (a million calls): plain indexing, no helpers.
        width = len(cells)
        if width < self.width:
            self.error(
                line,
                N_("열이 모자랍니다: 머리글은 %(header)s열, 이 줄은 %(row)s열입니다."),
                header=self.width,
                row=width,
            )
            return None
        where = self.positions
        at = where["email"]
        raw_email = _unquote_formula(cells[at].strip()) if at < width else ""
        if not raw_email:
            self.error(line, N_("이메일 주소가 비어 있습니다."))
            return None
        if self.lossy and "\ufffd" in "".join(cells):
            self.error(
                line,
                N_("%(encoding)s 글자로 읽을 수 없는 문자가 있는 줄입니다."),
                encoding=self.encoding.upper(),
            )
            return None
        try:
            email = normalise_email(raw_email)
        except InvalidInput as exc:
            why = Term(ko=exc.text("ko"), en=exc.detail)
            self.error(line, N_("잘못된 이메일 주소입니다: %(why)s"), why=why)
            return None
        at_name = where.get("name", width)
        at_source = where.get("source", width)
        at_when = where.get("subscribed_at", width)
        try:
            name = _clean_text(cells[at_name], MAX_NAME_LENGTH, "name") if at_name < width else None
            source = _clean_source(cells[at_source]) if at_source < width else None
            when_text = cells[at_when].strip() if at_when < width else ""
            subscribed_at = _parse_when(when_text, self.timezone) if when_text else None
        except InvalidInput as exc:
            self.error(line, exc.message, **exc.values)
            return None
        if subscribed_at is not None and subscribed_at > self.latest_allowed:
            self.error(line, N_("구독일이 앞으로의 날짜입니다."))
            return None
        key = email.lower()
        # = suppression_hash(secret, key), via OpenSSL's one-shot HMAC (3x faster).
        digest = hmac.digest(self.secret, key.encode(), "sha256").hex()
        return (line, email, key, digest, name, subscribed_at, source)

    def bytes_read(self) -> int:
        try:
            return self.binary.tell()
        except (OSError, ValueError):
            return 0

    def close(self) -> None:
        self.text.detach()  # leave the caller's file open


def _file_size(binary: IO[bytes]) -> int:
    position = binary.tell()
    size = binary.seek(0, io.SEEK_END)
    binary.seek(position)
    return size


async def _staged_batches(
    rows: CsvRows, progress: Progress | None, total: int
) -> AsyncIterator[StagedRow]:
    """Parse in a worker thread, BATCH_ROWS at a time, so a web process stays
    responsive while a big file is read; asyncpg streams the rows into COPY."""
    iterator = iter(rows)

    def take() -> list[StagedRow]:
        batch: list[StagedRow] = []
        for row in iterator:
            batch.append(row)
            if len(batch) >= BATCH_ROWS:
                break
        return batch

    while True:
        batch = await asyncio.to_thread(take)
        if progress is not None:
            progress(min(rows.bytes_read(), total), total)
        if not batch:
            return
        for row in batch:
            yield row


def _stated_source(mode: str, source: str | None) -> str | None:
    """Where the consent was given: required for a confirmed list, bounded."""
    if mode not in MODES:
        raise InvalidInput.one_of("mode", MODES)
    stated = (source or "").strip() or None
    if mode == "confirmed" and stated is None:
        raise InvalidInput(
            N_(
                "동의를 받은 명단을 가져오려면 동의 출처(언제 어디서 어떻게 동의했는지, "
                "예: ‘2023 시민 설문 동의서’)를 적어 주세요. 아니면 초대 방식으로 가져오세요."
            ),
            field="source",
        )
    if stated is not None and len(stated) > MAX_SOURCE_LENGTH:
        raise InvalidInput(
            TOO_LONG, field="source", name=field_name("source"), limit=MAX_SOURCE_LENGTH
        )
    return stated


async def _merge(
    conn: Connection,
    settings: Settings,
    mode: str,
    now: datetime,
    stated: str | None,
    recorded_by: str,
) -> Record:
    """The staged rows into ``subscribers``, one set-based statement per mode."""
    if mode == "confirmed":
        merged = await conn.fetchrow(
            QUERIES.roster_merge_confirmed, now, stated, recorded_by, MAX_REPORTED
        )
    else:
        merged = await conn.fetchrow(
            QUERIES.roster_merge_invite,
            now,
            stated or "import",
            recorded_by,
            MAX_REPORTED,
            INVITE_PRIORITY,
            invites_per_second(settings),
        )
    assert merged is not None  # an aggregate always answers one row
    return merged


async def import_csv(
    db: Database,
    settings: Settings,
    binary: IO[bytes],
    *,
    mode: str,
    source: str | None,
    actor: audit.Actor,
    now: datetime,
    encoding: str | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import a subscriber CSV (columns email, name, subscribed_at, source).

    ``confirmed``: the city already holds consent; ``source`` says where it
    was given and is kept as consent evidence. ``invite``: new addresses get a
    confirmation mail and stay pending until they click. Either way, nobody
    who is suppressed, erased, unsubscribed or lapsed is ever (re-)activated.
    The whole import is one transaction: all of it lands or none of it.
    """
    stated = _stated_source(mode, source)
    total = _file_size(binary)
    if total == 0:
        raise InvalidInput(N_("빈 파일입니다."), field="file")
    _refuse_spreadsheet(binary)
    encoding = encoding or detect_encoding(binary)
    rows = CsvRows(
        binary, encoding=encoding, settings=settings, now=now, address_key=db.address_key
    )
    recorded_by = f"import by {actor.name}" + (
        f" (api key #{actor.api_key_id})" if actor.api_key_id else ""
    )
    try:
        async with db.transaction() as conn:
            await conn.execute(QUERIES.roster_lock_staging)
            await conn.copy_records_to_table(
                "roster_staging",
                records=_staged_batches(rows, progress, total),
                columns=[
                    "line",
                    "email",
                    "email_key",
                    "email_hash",
                    "name",
                    "subscribed_at",
                    "source",
                ],
            )
            await conn.execute(QUERIES.roster_analyze_staging)
            # The merge sorts and hashes the whole staging table: give it room.
            await conn.execute("SET LOCAL work_mem = '256MB'")
            merged = await _merge(conn, settings, mode, now, stated, recorded_by)
            await conn.execute(QUERIES.roster_lock_staging)  # no personal data lingers
            report = _report(mode, encoding, rows, merged)
            await audit.record(
                conn,
                actor,
                f"subscribers.import.{mode}",
                "subscribers",
                source=stated,
                **{k: v for k, v in report.as_dict().items() if isinstance(v, int)},
            )
    finally:
        rows.close()
    return report


def invites_per_second(settings: Settings) -> float:
    """Invitations trickle out at half the global send rate (at most 10/s)."""
    return max(min(settings.rate_per_second / 2, 10.0), 0.1)


def _report(mode: Mode | str, encoding: str, rows: CsvRows, merged: Record) -> ImportReport:
    raced = int(merged["raced"])
    report = ImportReport(
        mode="confirmed" if mode == "confirmed" else "invite",
        encoding=encoding,
        header=rows.header,
        rows=rows.rows,
        inserted=int(merged["inserted"]),
        updated=int(merged["updated"]),
        unchanged=int(merged["unchanged"]),
        duplicates=int(merged["duplicates"]),
        skipped=int(merged["skipped"]) + raced,
        invalid=rows.invalid,
        invited=int(merged["invited"]),
        errors=rows.errors,
        skipped_rows=[
            LineReport(int(item["line"]), SKIP_REASONS[item["outcome"]])
            for item in merged["skipped_rows"]
        ],
    )
    return report


# --- listing and export ---------------------------------------------------------


def check_status(status: str | None) -> None:
    if status is not None and status not in SUBSCRIBER_STATUSES:
        raise InvalidInput.one_of("status", SUBSCRIBER_STATUSES)


async def page(
    conn: Connection,
    *,
    after: int = 0,
    limit: int = 100,
    status: str | None = None,
    email_prefix: str | None = None,
) -> list[Record]:
    """One keyset page of subscribers in id order, after id ``after``.

    Personal data: callers outside this package read it through
    :func:`newsletter.audience.personal_data.page`, which records the read."""
    check_status(status)
    if not 1 <= limit <= 1000:
        raise InvalidInput.out_of_range("limit", 1, 1000)
    if after < 0:
        raise InvalidInput(
            N_("%(name)s은(는) 0 이상이어야 합니다."), field="after", name=field_name("after")
        )
    prefix = (email_prefix or "").strip().lower()
    if prefix:
        if len(prefix) > MAX_EMAIL_LENGTH:
            raise InvalidInput(
                N_("%(name)s이(가) 너무 깁니다."),
                field="email_prefix",
                name=field_name("email_prefix"),
            )
        return await conn.fetch(QUERIES.roster_search_prefix, after, prefix, status, limit)
    if status is not None:
        return await conn.fetch(QUERIES.roster_page_by_status, after, status, limit)
    return await conn.fetch(QUERIES.roster_page, after, limit)


# A spreadsheet treats cells starting with these as formulas (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
EXPORT_COLUMNS = ("email", "name", "status", "subscribed_at", "last_consent_at", "source")


def neutralise(cell: str) -> str:
    """Prefix a would-be formula with ' so Excel shows it as text."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def _when(moment: datetime | None, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).isoformat(timespec="seconds") if moment else ""


async def export_csv(
    db: Database, settings: Settings, *, bom: bool = False, status: str | None = None
) -> AsyncIterator[bytes]:
    """The roster as UTF-8 CSV, one keyset page at a time (flat memory).

    ``bom`` adds a UTF-8 byte-order mark so Korean Excel opens it correctly.
    Readers take it from :func:`newsletter.audience.personal_data.export`,
    which records the read first.
    """
    check_status(status)
    zone = ZoneInfo(settings.timezone)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    head = buffer.getvalue().encode()
    yield (codecs.BOM_UTF8 + head) if bom else head
    after = 0
    while True:
        async with db.pool.acquire() as conn:
            records = await page(conn, after=after, limit=1000, status=status)
        if not records:
            return
        buffer.seek(0)
        buffer.truncate()
        for record in records:
            writer.writerow(
                (
                    neutralise(record["email"]),
                    neutralise(record["name"] or ""),
                    record["status"],
                    _when(record["confirmed_at"], zone),
                    _when(record["last_consent_at"], zone),
                    neutralise(record["source"] or ""),
                )
            )
        yield buffer.getvalue().encode()
        after = records[-1]["id"]
