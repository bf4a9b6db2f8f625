"""Turning SQLModel columns into console form fields.

Flask-Admin finds a converter by the class names along the column type's MRO (and by their dotted names).
SQLModel's `AutoString` and our `UTCDateTime` are `TypeDecorator`s, whose MRO names neither `String` nor
`DateTime`, so without these handlers Flask-Admin silently leaves such columns out of every form.
SQLModel models also declare no relationships, and Flask-Admin leaves foreign-key columns out unless a
relationship covers them; a view names the foreign keys it wants as selects in `form_foreign_keys`
({column: a callable returning (id, label) pairs}).
"""
from __future__ import annotations

from datetime import timezone

import sqlalchemy as sa
from flask_admin.contrib.sqla.form import AdminModelConverter
from flask_admin.contrib.sqla.validators import Unique
from flask_admin.form import DateTimeField, Select2Field, Select2Widget
from flask_admin.model.form import converts
from flask_babel import lazy_gettext as _l
from sqlalchemy import Column
from wtforms import SelectField, ValidationError, validators
from wtforms.fields.choices import SelectChoice

from tickets.db import db
from tickets.clock import local, local_tz

ALREADY_IN_USE = _l("This is already in use.")


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class LocalDateTimeField(DateTimeField):
    """A UTC instant shown and entered as the office's local time (TIMEZONE); `data` is aware UTC."""

    def __init__(self, label=None, validators=None, format=None, **kwargs):
        super().__init__(label, validators, format or "%Y-%m-%d %H:%M:%S", **kwargs)
        # The picker writes seconds; people typing usually leave them out.
        self.format = [self.format[0], "%Y-%m-%d %H:%M"]
        self.strptime_format = list(self.format)

    def _value(self) -> str:
        if self.raw_data:
            return " ".join(self.raw_data)
        if self.data is None:
            return ""
        return local(self.data).strftime(self.format[0])

    def process_formdata(self, valuelist) -> None:
        if not valuelist or not " ".join(valuelist).strip():
            self.data = None
            return
        super().process_formdata(valuelist)
        if self.data is not None:
            self.data = self.data.replace(tzinfo=local_tz()).astimezone(timezone.utc)


class UniqueValue:
    """The value of a unique column is not another row's already (the database has the last word on races)."""

    field_flags = {"unique": True}

    def __init__(self, model, column, message=None):
        self.model = model
        self.column = column
        self.message = message or ALREADY_IN_USE

    def __call__(self, form, field) -> None:
        if field.data is None:
            return
        keys = sa.inspect(self.model).primary_key
        row = db.session.execute(sa.select(*keys).where(self.column == field.data).limit(1)).first()
        if row is None:
            return
        editing = getattr(form, "_obj", None)
        if editing is not None and tuple(getattr(editing, key.key) for key in keys) == tuple(row):
            return
        raise ValidationError(str(self.message))


class ChoicesField(SelectField):
    """A select whose options may be read per form (a callable), with an optional blank meaning None.

    Flask-Admin's Select2Field (what `form_choices` gives) passes WTForms 3.3 the (value, label) tuples it
    deprecates and cannot read the SelectChoice objects it wants instead, so the console uses this field.
    `data` is `coerce(value)`, or None for the blank option.
    """

    widget = Select2Widget()

    def __init__(self, label=None, validators=None, choices=(), coerce=str, allow_blank=False, blank_text="",
                 **kwargs):
        self.choice_source = choices
        self.value_coerce = coerce
        self.allow_blank = allow_blank
        self.blank_text = blank_text
        super().__init__(label, validators, coerce=self._coerce, choices=self._options, **kwargs)

    def _coerce(self, value):
        if value is None or value in ("", "__None"):
            return None
        return self.value_coerce(value)

    def _options(self) -> list[SelectChoice]:
        source = self.choice_source() if callable(self.choice_source) else self.choice_source
        options = [SelectChoice(str(value), str(text)) for value, text in source]
        return ([SelectChoice("", str(self.blank_text))] if self.allow_blank else []) + options

    def pre_validate(self, form) -> None:
        if self.data is None:
            return  # emptiness is the business of InputRequired/Optional
        super().pre_validate(form)


class BanjieModelConverter(AdminModelConverter):
    """Flask-Admin's converter, taught SQLModel's and Banjie's column types."""

    def convert(self, model, mapper, name, prop, field_args, hidden_pk):
        column = _single_column(prop)
        foreign_keys = getattr(self.view, "form_foreign_keys", None) or {}
        if column is not None and column.foreign_keys and prop.key in foreign_keys:
            return self._foreign_key_select(column, prop.key, foreign_keys[prop.key], field_args)
        field = super().convert(model, mapper, name, prop, field_args, hidden_pk)
        if getattr(field, "field_class", None) is Select2Field:  # from `form_choices`
            kwargs = dict(field.kwargs)
            kwargs.pop("coerce", None)
            field = ChoicesField(*field.args, **kwargs)
        checks = getattr(field, "kwargs", {}).get("validators")
        if checks:
            # Flask-Admin's Unique calls `session.query()` (deprecated by SQLModel's Session, a warning per
            # call) and says "Already exists." from Flask-Admin's catalog; ours selects and speaks Banjie's.
            checks[:] = [UniqueValue(v.model, v.column) if type(v) is Unique else v for v in checks]
        return field

    def _foreign_key_select(self, column, key, loader, field_args):
        kwargs = {"validators": [], **(field_args or {})}
        kwargs["validators"] = list(kwargs["validators"])
        kwargs["label"] = self._get_label(key, kwargs)
        kwargs["description"] = self._get_description(key, kwargs)
        kwargs["validators"].append(validators.Optional() if column.nullable else validators.InputRequired())
        return ChoicesField(choices=loader, coerce=int, allow_blank=column.nullable, **kwargs)

    @classmethod
    def _string_common(cls, column, field_args, **extra):
        # Leading and trailing blanks are never meant; strip them before "empty means NULL" applies.
        field_args["filters"] = [_strip, *field_args.get("filters", [])]
        super()._string_common(column=column, field_args=field_args, **extra)

    @converts("sqlmodel.sql.sqltypes.AutoString")
    def convert_auto_string(self, column, field_args, **extra):
        # The TypeDecorator passes `length` through to its String impl; _string_common adds Length(max=...).
        return self.conv_String(column=column, field_args=field_args, **extra)

    @converts("tickets.db.UTCDateTime")
    def convert_utc_datetime(self, column, field_args, **extra):
        return LocalDateTimeField(**field_args)

    # Encrypted at rest (tickets/privacy/crypto.py): a form shows and takes the clear text, as the model does.
    @converts("tickets.privacy.crypto.Encrypted", "tickets.privacy.crypto.PhoneIndexed")
    def convert_encrypted_text(self, column, field_args, **extra):
        return self.conv_String(column=column, field_args=field_args, **extra)

    @converts("tickets.privacy.crypto.EncryptedBytes")
    def convert_encrypted_bytes(self, column, field_args, **extra):
        return self.conv_Text(column=column, field_args=field_args, **extra)


def _single_column(prop):
    columns = getattr(prop, "columns", None)
    if not columns or len(columns) != 1 or not isinstance(columns[0], Column):
        return None
    return columns[0]
