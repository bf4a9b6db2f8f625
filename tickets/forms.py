"""Forms of the public pages. They render fields and carry the CSRF token; the rules live in intake/workflow."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, MultipleFileField, RadioField, SelectChoice, SelectField, StringField, TextAreaField

from .labels import PROBLEM_TYPE_LABELS, SCORE_LABELS


class FieldErrorsForm(FlaskForm):
    """A public form whose fields the workflow's rules check: their messages land on the fields (`apply_errors`)."""

    def apply_errors(self, fields: dict) -> None:
        for name, message in fields.items():
            getattr(self, name).errors = [str(message)]


class FilingForm(FieldErrorsForm):
    office_code = SelectField(_l("Window"), choices=[], validate_choice=False)
    name = StringField(_l("Your name or company"))
    phone = StringField(_l("Phone number (mobile or landline)"))
    problem_type = RadioField(_l("What went wrong"), choices=[SelectChoice(code, label) for code, label in PROBLEM_TYPE_LABELS.items()], validate_choice=False)
    department_id = SelectField(_l("Department concerned (if you know it)"), choices=[], validate_choice=False)
    service_item = StringField(_l("Service or matter (e.g. business licence change)"))
    description = TextAreaField(_l("What happened"))
    files = MultipleFileField(_l("Photos or documents (optional)"), name="files[]", id="files")
    privacy = BooleanField(_l("I have read how my personal information is handled and agree to it"))


class LookupForm(FlaskForm):
    tracking_no = StringField(_l("Tracking number"))
    code = StringField(_l("Query code"))


class RecoverForm(FieldErrorsForm):
    """找回查询码: the rules are `intake.recover_query_code`'s."""
    tracking_no = StringField(_l("Tracking number"))
    phone = StringField(_l("Mobile number you filed with"))


class SupplementForm(FieldErrorsForm):
    """补充材料: the rules are `workflow.supplement`'s."""
    content = TextAreaField(_l("What you want to add"))
    files = MultipleFileField(_l("Photos or documents (optional)"), name="files[]", id="files")


class WithdrawForm(FieldErrorsForm):
    """撤回: the rules are `workflow.withdraw`'s; the box must be ticked."""
    confirm = BooleanField(_l("I want to withdraw this case"))
    reason = TextAreaField(_l("Why (optional)"))


class DeletionRequestForm(FieldErrorsForm):
    """删除个人信息的申请: the rules are `workflow.request_deletion`'s; the box must be ticked. Its own field names: the case
    page also holds the withdrawal form."""
    delete_confirm = BooleanField(_l("I want my name and phone number in this case deleted"))
    delete_reason = TextAreaField(_l("Why you ask (optional)"))


class DeletionWithdrawForm(FieldErrorsForm):
    """The deletion request taken back: nothing but the CSRF token (`workflow.withdraw_deletion_request`)."""


class RatingForm(FieldErrorsForm):
    """满意度评价: the rules are `workflow.rate`'s (the score arrives as sent, so a refused one comes back as it was)."""
    score = RadioField(_l("How satisfied are you?"), choices=[SelectChoice(str(score), label) for score, label in SCORE_LABELS.items()],
                       validate_choice=False)
    comment = TextAreaField(_l("Comment (optional)"))
