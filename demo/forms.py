"""Forms of the demo's HTML pages (the JSON endpoints validate their bodies themselves)."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from omnitenant_async.exceptions import InvalidTenantName
from omnitenant_async.validators import validate_tenant_id

MAX_NOTE = 500
ISOLATION_CHOICES = [
    ("schema", "Schema in the shared database"),
    ("database", "A database of its own"),
]


def _tenant_id_validator(value: str) -> None:
    try:
        validate_tenant_id(value)
    except InvalidTenantName as err:
        raise ValidationError(str(err), code="invalid_tenant_id") from None


class TenantForm(forms.Form):
    """A new tenant: its id (a DNS label, also its schema name) and a display name."""

    tenant_id = forms.CharField(
        label="Tenant id",
        validators=[_tenant_id_validator],
        help_text="Lower-case letters, digits and hyphens; it becomes <id>.localhost.",
        widget=forms.TextInput(
            attrs={
                "placeholder": "e.g. hooli",
                "maxlength": 63,  # the validator says why (no second "at most 63" message)
                "autocomplete": "off",
                "spellcheck": "false",
            }
        ),
    )
    name = forms.CharField(
        label="Name",
        max_length=200,
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "e.g. Hooli XYZ"}),
    )
    isolation = forms.ChoiceField(
        label="Isolation", choices=ISOLATION_CHOICES, initial="schema", widget=forms.RadioSelect
    )


class NoteForm(forms.Form):
    text = forms.CharField(
        label="Note",
        max_length=MAX_NOTE,
        strip=True,
        widget=forms.TextInput(attrs={"placeholder": "Write a note…", "autocomplete": "off"}),
    )
