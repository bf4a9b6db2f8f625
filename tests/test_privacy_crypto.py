"""Encryption at rest (tickets/privacy/crypto.py, rotation.py): a run leaves no citizen's name or number in the SQLite
file or a pg_dump, in any spelling, nor a file's bytes; search, survey replies and the recover-code limit work through
the blind indexes; an interrupted key rotation resumed leaves every value readable under the new key alone; a wrong
or missing key is a clear error; production without keys does not start."""
from __future__ import annotations

import base64
import io
import random
import re
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from app import create_app
from notify.models import InboundSms, SmsMessage, SmsOptOut
from notify.survey import handle_inbound
from tests.helpers import BASE_CONFIG, PG_TEST_DB, examples, page_csrf, csrf_of
from tests.test_upgrade_contact import scratch_url  # noqa: F401  (a fixture: an empty database of the test's kind)
from tickets.db import db
from tickets.models import AccessLog, AttachmentBlob, Survey, Ticket
from tickets.privacy import crypto, rotation
from tickets.production import setting_findings

PG_DUMP = "/usr/lib/postgresql/15/bin/pg_dump"
QUERY_CODE = re.compile(r"查询码([A-Z0-9]{8})")  # as the receipt text gives it
OTHER_KEY = "next:" + base64.b64encode(b"n" * 32).decode()

# name, mobile (national), how it is filed
CITIZENS = {
    "api": ("欧阳明月", "13700137001"),
    "form": ("司马长风", "13700137002"),
    "intake": ("上官飞燕", "13700137003"),
    "open311": ("Zhuge Kongming", "13700137004"),
}


def spellings(national: str) -> list[str]:
    return [national, f"+86{national}", f"86{national}", f"{national[:3]} {national[3:7]} {national[7:]}",
            f"{national[:3]}-{national[3:7]}-{national[7:]}"]


def noisy_jpeg() -> bytes:
    rng = random.Random(7)
    image = Image.new("RGB", (64, 64))
    image.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(64 * 64)])
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95)
    return out.getvalue()


def file_everywhere(world) -> dict[str, str]:
    """One case filed each way, its texts written (outbox), a survey answered by SMS and a TD; {how: tracking no}."""
    filed = {}
    name, phone = CITIZENS["api"]
    filed["api"] = world.file(name=name, phone=phone)["tracking_no"]
    name, phone = CITIZENS["form"]
    client = world.app.test_client()
    response = client.post("/", data={"privacy": "y", "name": name, "phone": f"{phone[:3]} {phone[3:7]} {phone[7:]}",
                                      "problem_type": "too_hard", "description": "开证明要跑三个部门，一个多月还没办成。",
                                      "csrf_token": page_csrf(client),
                                      "files[]": [(io.BytesIO(noisy_jpeg()), "现场.jpg", "image/jpeg")]},
                           content_type="multipart/form-data")
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    name, phone = CITIZENS["intake"]
    console = world.console("office")
    page = console.get("/admin/intake/")
    response = console.post("/admin/intake/", data={
        "name": name, "phone": f"+86 {phone}", "problem_type": "cannot_handle", "channel": "window",
        "description": "来窗口反映社保卡补办跑了三趟还没办成。", "csrf_token": csrf_of(page.get_data(as_text=True))})
    assert response.status_code in (302, 303), response.get_data(as_text=True)[:500]
    first, last = CITIZENS["open311"][0].split()
    with world.app.app_context():
        from tickets.accounts import issue_token
        from tickets.models import User

        key = issue_token(db.session, db.session.get(User, world.users["office"]), scope="file")
        db.session.commit()
    response = world.client.post("/open311/v2/requests.json", data={
        "api_key": key, "service_code": "too_slow", "first_name": first, "last_name": last,
        "phone": CITIZENS["open311"][1], "description": "A large sinkhole is destroying the street",
        "address_string": "1234 5th street"})
    assert response.status_code == 201, response.data
    # the API's case is answered and closed; its citizen rates it by SMS, another citizen texts TD
    no = filed["api"]
    world.act("office", no, "accept")
    world.act("office", no, "resolve", content="已答复。")
    with world.app.app_context():
        inbound = handle_inbound(db.session, sid="SM-in-1", phone="+86" + CITIZENS["api"][1], body="1")
        assert inbound.outcome == "rated"
        handle_inbound(db.session, sid="SM-in-2", phone="+86" + CITIZENS["form"][1], body="TD")
        db.session.commit()
        for how, (_name, phone) in CITIZENS.items():
            filed[how] = db.session.scalar(sa.select(Ticket.tracking_no).where(
                Ticket.phone_index == crypto.phone_index("+86" + phone)))
    return filed


def database_bytes(app) -> bytes:
    url = app.config["DATABASE_URL"]
    with app.app_context():
        db.engine.dispose()
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1]
        wal = Path(path + "-wal")
        return Path(path).read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    done = subprocess.run([PG_DUMP, "-h", "127.0.0.1", "-U", "postgres", "--data-only", PG_TEST_DB],
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_run_leaves_no_citizens_name_number_or_file_in_clear(world):
    file_everywhere(world)
    with world.app.app_context():
        # every citizen's number and name went in and reads back
        tickets = {t.citizen_name: t for t in db.session.scalars(sa.select(Ticket))}
        assert set(tickets) == {name for name, _ in CITIZENS.values()}
        for name, phone in CITIZENS.values():
            assert tickets[name].phone == "+86" + phone and tickets[name].phone_index == crypto.phone_index(
                "+86" + phone) and tickets[name].name_index == crypto.name_index(name)
        assert db.session.scalar(sa.select(sa.func.count()).select_from(SmsMessage)) >= 4
        assert db.session.get(SmsOptOut, "+86" + CITIZENS["form"][1]) is not None
        blobs = [bytes(data) for data in db.session.scalars(sa.select(AttachmentBlob.data))]
        assert blobs and all(blob.startswith(b"\xff\xd8") for blob in blobs)  # JPEG, decrypted on reading
        raw = db.session.execute(sa.text("SELECT phone FROM ticket")).scalars().all()
        assert all(value.startswith("enc:1:test1:") for value in raw)
        # the receipts' query codes too: with the tracking number, a code opens the case and the citizen's copy
        codes = {code for body in db.session.scalars(sa.select(SmsMessage.body)) for code in QUERY_CODE.findall(body)}
        assert len(codes) >= 4
        raw = db.session.execute(sa.text("SELECT body FROM sms_message")).scalars().all()
        assert all(value.startswith("enc:1:test1:") for value in raw)
    dump = database_bytes(world.app)
    for code in codes:
        assert code.encode() not in dump
    for name, phone in CITIZENS.values():
        assert name.encode() not in dump
        for part in name.split():
            assert part.encode() not in dump
        for spelling in spellings(phone):
            assert spelling.encode() not in dump, spelling
    for blob in blobs:
        for start in range(200, len(blob) - 64, max(1, (len(blob) - 264) // 8)):
            assert blob[start:start + 48] not in dump


def test_search_surveys_and_limits_work_through_the_blind_indexes(world):
    filed = file_everywhere(world)
    for term in ("13700137003", "137 0013 7003", "+8613700137003", "上官飞燕", "上官 飞燕"):
        items = world.get("office", "/api/v1/staff/tickets", query_string={"q": term}).get_json()["items"]
        assert [item["tracking_no"] for item in items] == [filed["intake"]]
    # a part of a name finds nothing: names are encrypted, found only whole
    assert world.get("office", "/api/v1/staff/tickets", query_string={"q": "上官"}).get_json()["items"] == []
    page = world.console("office").get("/admin/cases/", query_string={"search": "13700137002"}).get_data(as_text=True)
    assert filed["form"] in page and filed["api"] not in page
    with world.app.app_context():
        survey = db.session.scalar(sa.select(Survey))
        assert (survey.score, survey.channel) == (1, "sms")
        assert db.session.scalar(sa.select(InboundSms.phone).where(InboundSms.provider_sid == "SM-in-2")) \
            == "+86" + CITIZENS["form"][1]
    # the recover-code limit counts by the number's index: three codes a day, then nothing changes
    no, phone = filed["api"], CITIZENS["api"][1]
    for _ in range(4):
        assert world.client.post("/api/v1/tickets/recover-code", json={"tracking_no": no, "phone": phone}).status_code == 202
    with world.app.app_context():
        from tickets.models import Event

        assert db.session.scalar(sa.select(sa.func.count()).select_from(Event).where(
            Event.action == "recover_code")) == 3
    # a comparison with the encrypted column itself would match nothing: it is refused
    with pytest.raises(TypeError, match="blind index"):
        Ticket.phone == "+8613700137001"  # noqa: B015


def ring_of(app) -> crypto.KeyRing:
    return crypto.ring(app)


def test_rotation_interrupted_and_resumed_leaves_every_value_under_the_new_key(world, make_app):
    file_everywhere(world)
    for n in range(5):
        world.file(name=f"测试{n}", phone=f"1370013710{n}")
    with world.app.app_context():
        # a row from before encryption: clear, without its index (as migration 0021 leaves them)
        db.session.execute(sa.text("UPDATE ticket SET phone = '+8613700137109', phone_index = NULL, "
                                   "citizen_name = '旧数据', name_index = NULL WHERE id = 1"))
        db.session.execute(sa.text("INSERT INTO sms_opt_out (phone, opted_out_at, source) "
                                   "VALUES ('+8613700137108', CURRENT_TIMESTAMP, 'sms')"))
        db.session.commit()
        before = {t.id: (t.citizen_name, t.phone) for t in db.session.scalars(sa.select(Ticket))}
        blobs = {b.key: bytes(b.data) for b in db.session.scalars(sa.select(AttachmentBlob))}
    rotated = make_app(PRIVACY_KEYS=f"{OTHER_KEY},{BASE_CONFIG['PRIVACY_KEYS']}")
    batches = []

    def stop_after_two(n):
        batches.append(n)
        if len(batches) == 2:
            raise KeyboardInterrupt

    with rotated.app_context():
        keys = ring_of(rotated)
        with pytest.raises(KeyboardInterrupt):
            rotation.rotate(db.session, keys, batch=2, progress=stop_after_two)
        halfway = rotation.status(db.session, keys)["ticket.citizen_name"]
        assert halfway["next"] == 4 and halfway["test1"] + halfway["clear"] == len(before) - 4
        rotation.rotate(db.session, keys, batch=3)
        for label, row in rotation.status(db.session, keys).items():
            assert all(count == 0 for key, count in row.items() if key != "next"), (label, row)
        assert rotation.remaining(db.session, keys) == {label: 0 for label in rotation.remaining(db.session, keys)}
        lines = db.session.scalars(sa.select(AccessLog).where(AccessLog.kind == "rotate_key")
                                   .order_by(AccessLog.id)).all()
        # each run: a line as it began (committed before its first batch), one as it ended or was stopped
        began = {"key_id": keys.current, "reindex": False, "started": True}
        assert [(line.actor, line.count, line.detail) for line in lines[::2]] == [("cli", None, began)] * 2
        assert [(line.actor, line.count > 0, line.detail["finished"]) for line in lines[1::2]] == [
            ("cli", True, False), ("cli", True, True)]
    # the new key alone reads everything; the old row got its index and is found by its number and name
    alone = make_app(PRIVACY_KEYS=OTHER_KEY)
    with alone.app_context():
        assert {t.id: (t.citizen_name, t.phone) for t in db.session.scalars(sa.select(Ticket))} == before
        assert {b.key: bytes(b.data) for b in db.session.scalars(sa.select(AttachmentBlob))} == blobs
        assert db.session.scalar(sa.select(Ticket.id).where(
            Ticket.phone_index == crypto.phone_index("+8613700137109"),
            Ticket.name_index == crypto.name_index("旧数据"))) == 1
        assert db.session.get(SmsOptOut, "+8613700137108").number == "+8613700137108"
        assert db.session.get(SmsOptOut, "+86" + CITIZENS["form"][1]) is not None
    # a new index key: --reindex recomputes every index, and the opt-outs are found again
    reindexed = make_app(PRIVACY_KEYS=OTHER_KEY, PRIVACY_INDEX_KEY=base64.b64encode(b"i" * 32).decode())
    result = reindexed.test_cli_runner().invoke(args=["privacy", "rotate-key", "--reindex"])
    assert result.exit_code == 0, result.output
    with reindexed.app_context():
        assert db.session.get(SmsOptOut, "+8613700137108") is not None
        items = db.session.scalars(sa.select(Ticket.id).where(
            Ticket.phone_index == crypto.phone_index("+8613700137109"))).all()
        assert items == [1]


def test_a_number_that_opted_out_again_under_a_new_index_key_is_reindexed_to_one_opt_out(world, make_app):
    """Between a new PRIVACY_INDEX_KEY and `rotate-key --reindex`, the opt-out kept under the old index is not found
    (docs/privacy.md), so a second TD writes a second row under the new one: the reindex keeps one, and finishes."""
    number = "+8613700137001"
    with world.app.app_context():
        handle_inbound(db.session, sid="SM-td-1", phone=number, body="TD")
        db.session.commit()
    changed = make_app(PRIVACY_INDEX_KEY=base64.b64encode(b"i" * 32).decode())
    with changed.app_context():
        assert db.session.get(SmsOptOut, number) is None
        handle_inbound(db.session, sid="SM-td-2", phone=number, body="TD")
        db.session.commit()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(SmsOptOut)) == 2
    result = changed.test_cli_runner().invoke(args=["privacy", "rotate-key", "--reindex"])
    assert result.exit_code == 0, (result.output, repr(result.exception))
    with changed.app_context():
        assert db.session.get(SmsOptOut, number) is not None
        assert db.session.scalar(sa.select(sa.func.count()).select_from(SmsOptOut)) == 1


def test_a_missing_or_wrong_key_is_a_clear_error(world, make_app):
    world.file(name="欧阳明月", phone="13700137001")
    missing = make_app(PRIVACY_KEYS=OTHER_KEY)
    with missing.app_context(), pytest.raises(crypto.PrivacyKeyError, match="key id 'test1'.*does not hold"):
        db.session.scalar(sa.select(Ticket))
    wrong = make_app(PRIVACY_KEYS="test1:" + base64.b64encode(b"w" * 32).decode())
    with wrong.app_context(), pytest.raises(crypto.PrivacyKeyError, match="does not open"):
        db.session.scalar(sa.select(Ticket.phone))
    result = wrong.test_cli_runner().invoke(args=["privacy", "rotate-key", "--reindex"])
    assert result.exit_code == 1 and "does not open" in result.output


def test_rotate_key_stopped_by_ctrl_c_says_how_far_it_came(world, make_app, monkeypatch):
    """Ctrl-C mid-run: exit 130, what the committed batches changed, how to go on, and the access-log line says the run
    did not finish (not Click's bare "Aborted!")."""
    for n in range(3):
        world.file(name=f"测试{n}", phone=f"1370013720{n}")
    rotated = make_app(PRIVACY_KEYS=f"{OTHER_KEY},{BASE_CONFIG['PRIVACY_KEYS']}")
    real = rotation._rotate_column
    columns = []

    def stopped_on_the_second_column(*args):
        columns.append(1)
        if len(columns) == 2:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(rotation, "_rotate_column", stopped_on_the_second_column)
    result = rotated.test_cli_runner().invoke(args=["privacy", "rotate-key", "--batch", "2"])
    assert result.exit_code == 130, result.output
    changed = int(re.search(r"interrupted: (\d+) values re-encrypted", result.stderr).group(1))
    assert changed > 0 and "run the same command again" in result.stderr
    with rotated.app_context():
        began, line = db.session.scalars(sa.select(AccessLog).where(AccessLog.kind == "rotate_key")
                                         .order_by(AccessLog.id)).all()
        assert began.detail["started"] and (line.count, line.detail["finished"]) == (changed, False)
    page = world.console("admin").get("/admin/access-log/", query_string={"kind": "rotate_key"}).get_data(as_text=True)
    said = re.findall(r'<td class="access-detail small text-muted">([^<]*)</td>', page)
    assert said == ["密钥 next · 未运行完即停止，再次运行可处理其余部分", "密钥 next · 开始运行"], said


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_production_without_keys_refuses_and_embedded_mode_makes_them(make_app, tmp_path):
    production = {**BASE_CONFIG, "DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}", "BROKER_URL": "redis://x:1/0"}
    for missing in ("PRIVACY_KEYS", "PRIVACY_INDEX_KEY"):
        with pytest.raises(ValueError, match="PRIVACY_KEYS and PRIVACY_INDEX_KEY must both be set"):
            create_app({**production, missing: ""})
    with pytest.raises(ValueError, match="32 bytes"):
        create_app({**production, "PRIVACY_KEYS": "a:c2hvcnQ="})
    instance = tmp_path / "instance"
    config = {"PRIVACY_KEYS": "", "PRIVACY_INDEX_KEY": "", "BROKER_URL": ""}
    crypto.settle(config, instance)
    again = {"PRIVACY_KEYS": "", "PRIVACY_INDEX_KEY": "", "BROKER_URL": ""}
    crypto.settle(again, instance)
    assert config["PRIVACY_KEYS"] == again["PRIVACY_KEYS"] and crypto.parse_keys(config["PRIVACY_KEYS"])
    assert (instance / "privacy_keys").stat().st_mode & 0o077 == 0
    found = [f.text for f in setting_findings({**make_app().config, "PRIVACY_KEY_FILES": config["PRIVACY_KEY_FILES"]})
             if f.refuse]
    assert any(text.startswith("PRIVACY_KEYS") for text in found)
    result = make_app().test_cli_runner().invoke(args=["privacy", "new-key"])
    assert crypto.parse_keys(result.output.strip())


KEYS = crypto.KeyRing(crypto.parse_keys(BASE_CONFIG["PRIVACY_KEYS"]), b"k" * 32)


@settings(max_examples=examples(200), deadline=None)
@given(text=st.text(max_size=80), column=st.sampled_from(["ticket.phone", "ticket.citizen_name", "survey.phone"]))
def test_any_text_round_trips_and_opens_in_its_own_column_only(text, column):
    stored = KEYS.encrypt(text, column)
    assert stored.startswith("enc:1:test1:") and KEYS.decrypt(stored, column) == text
    assert len(stored) <= 512 or len(text.encode()) > 340
    other = "sms_message.phone" if column != "sms_message.phone" else "ticket.phone"
    with pytest.raises(crypto.PrivacyKeyError):
        KEYS.decrypt(stored, other)
    assert KEYS.decrypt_bytes(KEYS.encrypt_bytes(text.encode(), column), column) == text.encode()


@settings(max_examples=examples(30), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(min_size=1, max_size=50), phone=st.from_regex(r"\+861[3-9][0-9]{9}", fullmatch=True))
def test_any_name_and_number_round_trip_through_the_database(app, name, phone):
    with app.app_context():
        ticket = Ticket(tracking_no="BJ20261116-9999", query_code_hash="x", citizen_name=name, phone=phone,
                        problem_type="other", description="round trip", office_id=1)
        db.session.add(ticket)
        db.session.flush()
        db.session.expire_all()
        loaded = db.session.scalar(sa.select(Ticket).where(Ticket.phone_index == crypto.phone_index(phone)))
        assert (loaded.citizen_name, loaded.phone, loaded.name_index) == (name, phone, crypto.name_index(name))
        db.session.rollback()


# --- files on the volume (ATTACHMENT_STORAGE=directory): each encrypted with a key of its own -------------------------

def volume_files(volume: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in volume.glob("??/*") if path.is_file()}  # not the marker


def test_files_on_a_volume_are_encrypted_each_with_its_own_key_kept_encrypted_in_the_database(make_app, tmp_path):
    from tests.helpers import seed_world
    from tests.test_attachments import file_with, pdf
    from tickets import attachments, storage
    from tickets.models import Attachment, AttachmentFileKey

    volume = tmp_path / "files"
    volume.mkdir()
    app = make_app(ATTACHMENT_STORAGE="directory", ATTACHMENT_DIR=str(volume))
    world = seed_world(app, app.test_client())
    response = file_with(world, ("证明.pdf", pdf(), "application/pdf"), ("现场.jpg", noisy_jpeg(), "image/jpeg"))
    assert response.status_code == 201, response.get_json()
    no, code = response.get_json()["tracking_no"], response.get_json()["query_code"]
    items = world.client.get(f"/api/v1/tickets/{no}?code={code}").get_json()["attachments"]

    def downloads() -> list[bytes]:
        answers = [world.client.get(f"{item['url']}?code={code}") for item in items]
        assert [answer.status_code for answer in answers] == [200, 200]
        return [answer.get_data() for answer in answers]

    plain = downloads()
    assert plain[0].startswith(b"%PDF") and plain[1].startswith(b"\xff\xd8")
    on_disk = volume_files(volume)
    assert len(on_disk) == 3  # the PDF, the photo and its thumbnail
    for sealed in on_disk.values():
        assert sealed.startswith(storage.FILE_HEADER)
        for data in plain:  # no stretch of either file anywhere on the volume
            for start in range(0, len(data) - 48, max(1, (len(data) - 48) // 12)):
                assert data[start:start + 48] not in sealed
    with app.app_context():
        stored = dict(db.session.execute(sa.text("SELECT key, file_key FROM attachment_file_key")).all())
        assert set(stored) == set(on_disk) and all(value.startswith("enc:1:test1:") for value in stored.values())
        assert len({db.session.get(AttachmentFileKey, key).file_key for key in stored}) == 3  # a key each
        # a file put under another's name does not open: its name is bound into its encryption
        first, second, _third = sorted(stored)
        swapped = storage.DirectoryStore(volume)
        (volume / first[:2] / first).write_bytes(on_disk[second])
        with pytest.raises(crypto.PrivacyKeyError, match="does not open"):
            swapped.get(db.session, first)
        (volume / first[:2] / first).write_bytes(on_disk[first])
        # a file written before encryption (no header) still reads, as it is
        legacy = storage.new_key()
        (volume / legacy[:2]).mkdir(exist_ok=True)
        (volume / legacy[:2] / legacy).write_bytes(b"%PDF-1.4 written before")
        assert swapped.get(db.session, legacy) == b"%PDF-1.4 written before"
        (volume / legacy[:2] / legacy).unlink()

    # PRIVACY_KEYS rotated: the files' keys are re-encrypted, the files themselves are not touched
    rotated = make_app(ATTACHMENT_STORAGE="directory", ATTACHMENT_DIR=str(volume),
                       PRIVACY_KEYS=f"{OTHER_KEY},{BASE_CONFIG['PRIVACY_KEYS']}")
    result = rotated.test_cli_runner().invoke(args=["privacy", "rotate-key"])
    assert result.exit_code == 0, result.output
    assert volume_files(volume) == on_disk
    alone = make_app(ATTACHMENT_STORAGE="directory", ATTACHMENT_DIR=str(volume), PRIVACY_KEYS=OTHER_KEY)
    with alone.app_context():
        assert all(value.startswith("enc:1:next:") for value in db.session.scalars(
            sa.text("SELECT file_key FROM attachment_file_key")))
        assert rotation.remaining(db.session, ring_of(alone))["attachment_file_key.file_key"] == 0
        rows = db.session.scalars(sa.select(Attachment).order_by(Attachment.id)).all()
        assert [storage.read(db.session, row.blob_key) for row in rows] == plain

        # deleting a file deletes its key: a copy of the volume kept elsewhere no longer opens
        copy = volume_files(volume)
        attachments.drop(db.session, rows)
        db.session.commit()
        assert volume_files(volume) == {}
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AttachmentFileKey)) == 0
        for key, sealed in copy.items():
            (volume / key[:2] / key).write_bytes(sealed)  # the copy brought back
            assert storage.read(db.session, key) is None


def test_a_file_on_a_volume_whose_filing_failed_cannot_be_read(make_app, tmp_path):
    """The file is written at once, its key with the filing's transaction: rolled back, the file stays unreadable."""
    from tests.helpers import seed_world
    from tickets import storage

    volume = tmp_path / "files"
    volume.mkdir()
    app = make_app(ATTACHMENT_STORAGE="directory", ATTACHMENT_DIR=str(volume))
    seed_world(app, app.test_client())
    with app.app_context():
        key = storage.new_key()
        storage.store().put(db.session, key, b"%PDF-1.4 a citizen's document")
        assert storage.read(db.session, key) == b"%PDF-1.4 a citizen's document"  # in the transaction: readable
        db.session.rollback()
        assert (volume / key[:2] / key).exists() and storage.read(db.session, key) is None


def test_moving_files_to_the_database_and_back_encrypts_those_written_before(make_app, tmp_path):
    from tests.helpers import seed_world
    from tests.test_attachments import file_with, pdf
    from tickets import storage
    from tickets.models import Attachment

    volume = tmp_path / "files"
    volume.mkdir()
    app = make_app(ATTACHMENT_STORAGE="directory", ATTACHMENT_DIR=str(volume))
    world = seed_world(app, app.test_client())
    filed = file_with(world, ("证明.pdf", pdf(), "application/pdf")).get_json()
    with app.app_context():
        (row,) = db.session.scalars(sa.select(Attachment)).all()
        document = storage.read(db.session, row.blob_key)
        path = volume / row.blob_key[:2] / row.blob_key
        # as a deployment from before encryption left it: the file in clear, no key row
        path.write_bytes(document)
        db.session.execute(sa.text("DELETE FROM attachment_file_key"))
        db.session.commit()
        assert storage.read(db.session, row.blob_key) == document
    runner = app.test_cli_runner()
    for to in ("database", "directory"):
        result = runner.invoke(args=["attachments", "move", "--to", to])
        assert result.exit_code == 0 and "1 of 1" in result.output, result.output
    assert path.read_bytes().startswith(storage.FILE_HEADER) and document[:48] not in path.read_bytes()
    (item,) = world.client.get(f"/api/v1/tickets/{filed['tracking_no']}?code={filed['query_code']}").get_json()[
        "attachments"]
    assert world.client.get(f"{item['url']}?code={filed['query_code']}").get_data() == document


def test_a_downgrade_below_0022_refuses_while_a_file_on_the_volume_is_encrypted(scratch_url, tmp_path):
    from tests.test_upgrade_contact import migrate
    from tickets import storage

    volume = tmp_path / "files"
    volume.mkdir()
    app = create_app({**BASE_CONFIG, "DATABASE_URL": scratch_url, "ATTACHMENT_STORAGE": "directory",
                      "ATTACHMENT_DIR": str(volume)})
    migrate(app, "head")
    with app.app_context():
        storage.store().put(db.session, storage.new_key(), b"%PDF-1.4 a citizen's document")
        db.session.commit()
    with pytest.raises(RuntimeError, match="attachments move --to database"):
        migrate(app, "0021", down=True)  # it would drop the file's key: it says how to go down safely instead
    with app.app_context():
        # and the refused run changed nothing, also of the revisions above 0022 it undid first (on SQLite too, whose
        # driver committed each CREATE and DROP on its own before migrations/env.py sent a BEGIN of its own)
        inspector = sa.inspect(db.engine)
        assert "anonymise_requested_at" in {c["name"] for c in inspector.get_columns("ticket")}
        assert "ix_ticket_anonymise_requested" in {i["name"] for i in inspector.get_indexes("ticket")}
        assert not any(name.startswith("_alembic_tmp") for name in inspector.get_table_names())
        db.engine.dispose()
    with app.app_context():
        db.session.execute(sa.text("DELETE FROM attachment_file_key"))
        db.session.commit()
        db.engine.dispose()
    migrate(app, "0021", down=True)
    with app.app_context():
        assert "attachment_file_key" not in sa.inspect(db.engine).get_table_names()
        db.engine.dispose()
