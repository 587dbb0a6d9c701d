"""Secrets at rest: an encrypted model field and a string type that will not print itself.

Values are Fernet tokens (AES-128-CBC + HMAC-SHA256) under a MultiFernet of the configured
keys: the first key encrypts, every key decrypts, so keys can be rotated without downtime
(`manage.py rotate_encryption_key`).
"""

import functools
import os

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import models

REDACTED = "********"


class SecretStr:
    """A secret in memory: str(), repr() and templates show it redacted; reveal() gives it."""

    __slots__ = ("_value",)

    def __init__(self, value):
        self._value = value.reveal() if isinstance(value, SecretStr) else str(value)

    def reveal(self):
        return self._value

    def __str__(self):
        return REDACTED

    __repr__ = __str__

    def __bool__(self):
        return bool(self._value)

    def __eq__(self, other):
        if isinstance(other, SecretStr):
            return self._value == other._value
        return NotImplemented

    def __hash__(self):
        return hash(self._value)

    def __reduce__(self):
        # Pickling would put the clear text into Redis, caches or sessions.
        raise TypeError("secrets are not picklable")


def load_keys():
    """Keys, newest first, from DCPORTAL_ENCRYPTION_KEYS or the key file."""
    raw = os.environ.get("DCPORTAL_ENCRYPTION_KEYS", "")
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    if not keys and settings.ENCRYPTION_KEY_FILE.exists():
        keys = [
            line.strip()
            for line in settings.ENCRYPTION_KEY_FILE.read_text().splitlines()
            if line.strip() and not line.startswith("#")
        ]
    if not keys:
        raise ImproperlyConfigured(
            "No encryption key: set DCPORTAL_ENCRYPTION_KEYS or create "
            f"{settings.ENCRYPTION_KEY_FILE} (`manage.py rotate_encryption_key` makes it)."
        )
    return keys


@functools.cache
def _fernet(keys):
    try:
        return MultiFernet([Fernet(k.encode()) for k in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(f"An encryption key is not a valid Fernet key: {exc}") from None


def fernet():
    return _fernet(tuple(load_keys()))


def encrypt(plaintext):
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt(token):
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted with the configured keys "
            "(was a key removed before re-encryption?)."
        ) from None


def rotate(token):
    """Re-encrypt a stored token under the newest key."""
    try:
        return fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted with any configured key, so it cannot be "
            "re-encrypted (was a key removed too early?)."
        ) from None


class Ciphertext(str):
    """A value that is already encrypted and is stored as it is (key rotation)."""


class EncryptedTextField(models.TextField):
    """Stores text encrypted; reads back a SecretStr. Write-only in every serializer and form."""

    def from_db_value(self, value, expression, connection):
        return None if value is None else SecretStr(decrypt(value))

    def to_python(self, value):
        if value is None or isinstance(value, SecretStr):
            return value
        return SecretStr(value)

    def get_prep_value(self, value):
        if value is None or isinstance(value, Ciphertext):
            return value
        if isinstance(value, SecretStr):
            value = value.reveal()
        return encrypt(str(value))

    def value_to_string(self, obj):
        # Fixtures and dumpdata never carry secrets.
        return REDACTED

    def validate(self, value, model_instance):
        # A SecretStr never equals "", so Django's own blank check would let an empty one pass.
        if isinstance(value, SecretStr) and not value:
            value = ""
        super().validate(value, model_instance)

    def formfield(self, **kwargs):
        from dcportal.forms import SecretFormField

        # Never required by the form itself: an edit form must accept an empty box (keep the
        # stored secret); save_form_data refuses an empty one where nothing is stored yet.
        return SecretFormField(required=False, label=self.verbose_name.capitalize())

    def save_form_data(self, instance, data):
        if data in (None, ""):
            if getattr(instance, self.attname):
                return  # an empty password box on an edit form keeps the stored secret
            if not self.blank:
                # ModelForm skips model validation of empty fields its form does not require;
                # a ValidationError here lands on the form field instead.
                raise ValidationError({self.name: self.error_messages["blank"]}, code="blank")
        super().save_form_data(instance, data)


def encrypted_fields():
    """(model, field) for every encrypted field of every installed model."""
    from django.apps import apps

    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if isinstance(field, EncryptedTextField):
                yield model, field
