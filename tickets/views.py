"""Public pages in Chinese, mobile first: file a grievance, get the tracking number, follow it, rate the reply."""
from __future__ import annotations

import hmac

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import SelectChoice

from . import attachments, clock, intake, offices, storage, workflow
from .api import filing_limit, lookup_limit
from .db import db
from .errors import Conflict, InvalidTransition, StorageUnavailable, ValidationFailed
from .extensions import public_limit
from .forms import DeletionRequestForm, DeletionWithdrawForm, FilingForm, LookupForm, RatingForm, RecoverForm, SupplementForm, WithdrawForm
from .models import Department, Office, Ticket
from .presenters import public_offices, public_view
from .privacy import export as citizen_export
from .phones import is_mobile
from .receipt import receipt_png
from .secrets import check_query_code, code_stamp, seal, unseal

bp = Blueprint("public", __name__)

TRACKED_KEY = "tracked"
FILED_KEY = "filed"
# The version of the form's 个人信息告知 (templates/tickets/_privacy.html) the citizen agreed to, kept with the filing:
# change it when the notice's substance changes.
PRIVACY_NOTICE_VERSION = "2026-12-05"  # 2026-12-04: the retention period and the rights of issue 19; 2026-12-05:
# deletion asked for on the case page
# The form's answer when the volume of files fails: what was typed stays on the page
STORE_AWAY = _l("The files cannot be saved just now: the file store cannot be reached. Nothing was filed; what you "
                "typed is kept below. Send it again in a minute, or without the files.")
UPLOADS_KEY = "uploads"  # the token under which the filing form holds this browser's files (attachments.hold)
TRACKED_MAX = 20


def _stamp(ticket: Ticket) -> str:
    return code_stamp(current_app.config["SECRET_KEY"], ticket.query_code_hash)


def _tracked() -> list[list]:
    """The cases this browser proved the query code of: [tracking number, stamp of that code] pairs, newest first."""
    tracked = session.get(TRACKED_KEY)
    if not isinstance(tracked, list):
        return []
    return [entry for entry in tracked if isinstance(entry, list) and len(entry) == 2]


def _remember(ticket: Ticket) -> None:
    """This browser proved it knows the case's query code; let it come back without typing it again, for as long as
    that code is the case's (a new code, 找回查询码, shuts it out: `_tracked_ticket`)."""
    tracked = [entry for entry in _tracked() if entry[0] != ticket.tracking_no]
    session[TRACKED_KEY] = ([[ticket.tracking_no, _stamp(ticket)]] + tracked)[:TRACKED_MAX]


def _forget(tracking_no: str) -> None:
    session[TRACKED_KEY] = [entry for entry in _tracked() if entry[0] != tracking_no]


def _office_choices():
    """Every active window, the tree indented (the root, preselected, first)."""
    return [SelectChoice(o.code, "\u3000" * offices.depth(o) + o.name) for o in offices.tree(db.session, active_only=True)]


def _department_choices():
    rows = db.session.scalars(sa.select(Department).where(Department.active.is_(True)).order_by(Department.code))
    return [SelectChoice("", _("Not sure"))] + [SelectChoice(str(d.id), d.name) for d in rows]


def _filing_page(form, *, status=200, invalid=False, held=()):
    return render_template("tickets/file.html", form=form, windows=public_offices(db.session), invalid=invalid,
                           held=held, accept=attachments.ACCEPT, max_files=attachments.MAX_FILES), status


def _filing_form() -> FilingForm:
    form = FilingForm()
    form.department_id.choices = _department_choices()
    form.office_code.choices = _office_choices()
    return form


@bp.get("/")
def index():
    """The filing form (with the files it holds for this browser, if an earlier submission had a field to correct)."""
    return _filing_page(_filing_form(), held=attachments.held_files(db.session, session.get(UPLOADS_KEY)))


@bp.post("/")
@public_limit(filing_limit, "filing")
def submit():
    """Check the form with the same rules as the API, file it, and show the tracking number.

    When a field must be corrected, nothing is lost: the typed text comes back, and the files that passed their check
    are held for this browser (`attachments.hold`) and listed, so the citizen need not choose them again."""
    form = _filing_form()
    token = session.get(UPLOADS_KEY)
    held = attachments.held_files(db.session, token)
    if not form.validate():  # only the CSRF token is checked here
        return _filing_page(form, status=400, held=held)
    kept = list(held)  # listed again if the volume fails: a file to leave out included, since it was not dropped
    removed = set(request.form.getlist("drop_held"))
    dropped = [row for row in held if str(row.id) in removed]
    held = [row for row in held if str(row.id) not in removed]
    good, refused = attachments.check(attachments.from_request(request.files.getlist(attachments.PART)),
                                      room=attachments.MAX_FILES - len(held))
    raw = {name: request.form.get(name) for name in intake.INTAKE_FIELDS}
    fields: dict = {}
    try:
        values = intake.validate_intake(db.session, raw)
    except ValidationFailed as error:
        fields = dict(error.fields)
    if refused:
        fields[attachments.FIELD] = " ".join(refused)
    if not form.privacy.data:
        fields["privacy"] = _l("Please read how your personal information is handled and tick the box.")
    try:
        if fields:
            db.session.rollback()
            if good or dropped:
                token = token or storage.new_key()
                attachments.drop(db.session, dropped)
                held += attachments.hold(db.session, good, token)
                db.session.commit()
                session[UPLOADS_KEY] = token
            form.apply_errors(fields)
            return _filing_page(form, status=422, invalid=True, held=held)
        attachments.drop(db.session, dropped)
        filed = intake.file_ticket(db.session, values, channel="web", files=good, held=held,
                                   privacy_notice=PRIVACY_NOTICE_VERSION, commit=True)
    except StorageUnavailable as error:
        # The volume of files failed (logged): nothing was filed, and the citizen keeps what they typed, with a way
        # forward (files held before need no volume to be filed with the case).
        db.session.rollback()
        form.apply_errors({**fields, attachments.FIELD: STORE_AWAY})
        page, status = _filing_page(form, status=error.status, invalid=True, held=kept)
        return page, status, error.headers
    session.pop(UPLOADS_KEY, None)
    # The cookie is readable by whoever holds it (signed, not encrypted): the code travels sealed.
    no = filed.ticket.tracking_no
    session[FILED_KEY] = {"tracking_no": no, "code": seal(current_app.config["SECRET_KEY"], filed.query_code, no)}
    _remember(filed.ticket)
    return redirect(url_for(".filed"), code=303)


@bp.get("/filed")
def filed():
    """The confirmation with the tracking number and query code: shown again on a reload for as long as this browser's
    session lasts (or until it files another case), so a citizen who reloads does not lose the code."""
    filed_case = _filed_receipt()
    if filed_case is None:
        return redirect(url_for(".track"))
    no, code = filed_case
    window, phone = db.session.execute(sa.select(Office.name, Ticket.phone).join(Ticket, Ticket.office_id == Office.id)
                                       .where(Ticket.tracking_no == no)).first() or (None, None)
    # A landline gets no texts (phones.is_mobile): the page says so instead of promising the receipt by SMS.
    return render_template("tickets/filed.html", receipt={"tracking_no": no, "code": code, "office_name": window,
                                                          "landline": phone is not None and not is_mobile(phone)})


def _filed_receipt() -> tuple[str, str] | None:
    """(tracking number, query code) of the case this browser filed last, while its session lasts and while that code
    is still the case's (after 找回查询码 the old code is dead: the page does not show it again)."""
    receipt = session.get(FILED_KEY)
    no = receipt.get("tracking_no") if isinstance(receipt, dict) else None
    code = unseal(current_app.config["SECRET_KEY"], receipt.get("code"), no) if isinstance(no, str) else None
    if code is None:
        return None
    stored = db.session.scalar(sa.select(Ticket.query_code_hash).where(Ticket.tracking_no == no))
    if stored is None or not check_query_code(stored, code):
        session.pop(FILED_KEY, None)
        return None
    return no, code


@bp.get("/filed/receipt.png")
def receipt_image():
    """The confirmation as a picture to save (「保存为图片」); only for the browser that filed the case."""
    filed_case = _filed_receipt()
    if filed_case is None:
        return redirect(url_for(".track"))
    no, code = filed_case
    ticket = db.session.scalar(sa.select(Ticket).where(Ticket.tracking_no == no))
    window = db.session.get(Office, ticket.office_id).name if ticket is not None else None
    png = receipt_png(office=current_app.config["OFFICE_NAME"], tracking_no=no, code=code, window=window,
                      at=ticket.created_at if ticket is not None else clock.now())
    return Response(png, mimetype="image/png", headers={
        "Content-Disposition": f'attachment; filename="{no}.png"', "Cache-Control": "no-store"})


def _prefilled(form):
    """A form asking for a tracking number, filled in from `?no=` when a page links to it with one."""
    if request.method == "GET" and request.args.get("no"):
        form.tracking_no.data = request.args["no"]
    return form


@bp.route("/track", methods=["GET", "POST"])
@public_limit(lookup_limit, "lookup", methods=["POST"])
def track():
    """Look a case up by tracking number and query code."""
    form = _prefilled(LookupForm())
    if form.validate_on_submit():
        ticket = intake.find_for_citizen(db.session, form.tracking_no.data or "", form.code.data or "")
        if ticket is not None:
            _remember(ticket)
            return redirect(url_for(".case", tracking_no=ticket.tracking_no), code=303)
        form.code.errors = [_("No case matches this tracking number and query code.")]
        return render_template("tickets/track.html", form=form), 404
    return render_template("tickets/track.html", form=form)


@bp.post("/track/my-data")
@public_limit(lookup_limit, "lookup")
def my_data():
    """「下载我的信息（PDF）」: what is held about the citizen in one case, for the tracking number and query code posted
    with it (the look-up's check, limit and error; never in an address). Each download is in the access log."""
    form = LookupForm()
    if not form.validate_on_submit():  # the CSRF token
        form.code.errors = [_("The form expired. Please send it again.")]
        return render_template("tickets/track.html", form=form), 400
    ticket = intake.find_for_citizen(db.session, form.tracking_no.data or "", form.code.data or "")
    if ticket is None:
        form.code.errors = [_("No case matches this tracking number and query code.")]
        return render_template("tickets/track.html", form=form), 404
    data = citizen_export.citizen_copy(db.session, ticket)
    db.session.commit()
    _remember(ticket)
    return citizen_export.pdf_response(data, ticket.tracking_no)


@bp.route("/track/recover", methods=["GET", "POST"])
@public_limit(lookup_limit, "lookup", methods=["POST"])
def recover():
    """找回查询码: the tracking number and the filing mobile number; a new code by SMS, the same answer either way."""
    form = _prefilled(RecoverForm())
    if form.validate_on_submit():
        try:
            intake.recover_query_code(db.session, form.tracking_no.data, form.phone.data)
        except ValidationFailed as error:
            db.session.rollback()
            form.apply_errors(error.fields)
            return render_template("tickets/recover.html", form=form), 422
        db.session.commit()
        return render_template("tickets/recover.html", form=form, sent=True)
    return render_template("tickets/recover.html", form=form), 400 if request.method == "POST" else 200


def _tracked_ticket(tracking_no: str) -> Ticket | None:
    """The case, if this browser proved its current query code; a browser that knew an older code is forgotten."""
    stamp = next((entry[1] for entry in _tracked() if entry[0] == tracking_no), None)
    if stamp is None:
        return None
    ticket = db.session.scalar(sa.select(Ticket).where(Ticket.tracking_no == tracking_no))
    if ticket is None or not hmac.compare_digest(str(stamp), _stamp(ticket)):
        _forget(tracking_no)
        return None
    return ticket


@bp.get("/track/<tracking_no>")
def case(tracking_no):
    """The case page: status, deadline, the public timeline, the reply, and the survey while it is open."""
    ticket = _tracked_ticket(tracking_no)
    if ticket is None:
        return redirect(url_for(".track", no=tracking_no))
    return _case_page(ticket)


def _case_page(ticket, *, status=200, **forms):
    """The case page; `forms` (supplement_form, withdraw_form, rating_form, deletion_form) bring back what the citizen
    typed, with its errors."""
    survey = workflow.open_survey_for(db.session, ticket, clock.now())
    view = public_view(db.session, ticket, survey_open=survey is not None)
    forms.setdefault("supplement_form", SupplementForm(formdata=None))
    forms.setdefault("withdraw_form", WithdrawForm(formdata=None))
    forms.setdefault("rating_form", RatingForm(formdata=None))
    forms.setdefault("deletion_form", DeletionRequestForm(formdata=None))
    return render_template("tickets/case.html", case=view, ticket=ticket, accept=attachments.ACCEPT, **forms), status


@bp.get("/track/<tracking_no>/files/<int:attachment_id>")
@public_limit(lookup_limit, "lookup")
def attachment(tracking_no, attachment_id):
    """A file of the case this browser proved it may follow (`?thumbnail=1`: an image's thumbnail)."""
    ticket = _tracked_ticket(tracking_no)
    if ticket is None:
        return redirect(url_for(".track", no=tracking_no))
    return attachments.download(db.session, ticket.id, attachment_id, citizen=True)


def _citizen_step(tracking_no: str, form, step, thanks: str, form_name: str):
    """A citizen's step from the case page (补充材料, 撤回, the rating): for the browser that proved it knows the query code, with
    the form's CSRF token; `step(ticket)` in a transaction, then back to the case page with `thanks`, or the case page
    again with what was typed and what is wrong (422/409), so nothing typed is lost."""
    ticket = _tracked_ticket(tracking_no)
    if ticket is None:
        return redirect(url_for(".track", no=tracking_no))
    if not form.validate():  # the CSRF token
        flash(_("The form expired. Please send it again."), "error")
        return redirect(url_for(".case", tracking_no=tracking_no), code=303)
    try:
        step(ticket)
        db.session.commit()
    # Conflict: staff acted on the case between this page's reading and the step (it is shown again as it is now);
    # StorageUnavailable: the volume of files failed.
    except (ValidationFailed, InvalidTransition, Conflict, StorageUnavailable) as error:
        db.session.rollback()
        fields = {name: message for name, message in error.fields.items() if hasattr(form, name)}
        form.apply_errors(fields)
        if not fields:
            flash(str(error.message), "error")
        page, status = _case_page(ticket, status=error.status, **{form_name: form})
        return page, status, error.headers  # Retry-After when the volume failed
    flash(thanks, "success")
    return redirect(url_for(".case", tracking_no=tracking_no), code=303)


@bp.post("/track/<tracking_no>/supplement")
@public_limit(lookup_limit, "lookup")
def supplement(tracking_no):
    """补充材料 from the case page: text, files or both."""
    form = SupplementForm()
    return _citizen_step(
        tracking_no, form, lambda ticket: workflow.supplement(
            db.session, ticket, form.content.data,
            attachments.from_request(request.files.getlist(attachments.PART))),
        _("Thank you: the information is added to your case and the handler is told."), "supplement_form")


@bp.post("/track/<tracking_no>/withdraw")
@public_limit(lookup_limit, "lookup")
def withdraw(tracking_no):
    """撤回 from the case page: only with the confirmation box ticked, only while the case waits for acceptance."""
    form = WithdrawForm()

    def step(ticket):
        if not form.confirm.data:
            raise ValidationFailed(fields={"confirm": _l("Tick the box to confirm that you want to withdraw the case.")})
        workflow.withdraw(db.session, ticket, form.reason.data)

    return _citizen_step(tracking_no, form, step, _("Your case is withdrawn. You can file again at any time."),
                         "withdraw_form")


@bp.post("/track/<tracking_no>/deletion-request")
@public_limit(lookup_limit, "lookup")
def request_deletion(tracking_no):
    """删除个人信息 from the case page: only with the confirmation box ticked; carried out once the case has ended."""
    form = DeletionRequestForm()

    def step(ticket):
        if not form.delete_confirm.data:
            raise ValidationFailed(fields={"delete_confirm": _l(
                "Tick the box to confirm that you want your personal information deleted.")})
        try:
            workflow.request_deletion(db.session, ticket, form.delete_reason.data)
        except ValidationFailed as error:  # the form's own field name
            error.fields = {("delete_reason" if name == "reason" else name): message
                            for name, message in error.fields.items()}
            raise

    return _citizen_step(tracking_no, form, step, _("Your request is recorded: your name and phone number in this "
                                                    "case are deleted as soon as the case has ended."),
                         "deletion_form")


@bp.post("/track/<tracking_no>/deletion-request/withdraw")
@public_limit(lookup_limit, "lookup")
def withdraw_deletion_request(tracking_no):
    """The deletion request taken back from the case page, before it is carried out."""
    return _citizen_step(tracking_no, DeletionWithdrawForm(),
                         lambda ticket: workflow.withdraw_deletion_request(db.session, ticket),
                         _("Your deletion request is withdrawn: your name and phone number are kept until this "
                           "case's retention period ends."), "deletion_withdraw_form")


@bp.post("/track/<tracking_no>/rating")
@public_limit(lookup_limit, "lookup")
def rate(tracking_no):
    """Record the citizen's rating from the case page; one refused comes back with the choice and comment kept."""
    form = RatingForm()

    def step(ticket):
        try:
            workflow.rate(db.session, ticket, form.score.data, form.comment.data, channel="web")
        except ValidationFailed as error:
            if "score" in error.fields:  # none chosen, or no number: the form offers only the five
                error.fields["score"] = _l("Please choose one of the five ratings.")
            raise

    return _citizen_step(tracking_no, form, step, _("Thank you for your rating."), "rating_form")
