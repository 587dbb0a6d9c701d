from cryptography.fernet import Fernet
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import TextField
from django.db.models.functions import Cast

from dcportal import secrets


class Command(BaseCommand):
    help = (
        "Add a new encryption key (first in the key file) and re-encrypt every stored secret "
        "with it. Old keys stay in the file until you remove them after the re-encryption."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--reencrypt-only",
            action="store_true",
            help="Do not add a key; re-encrypt with the current first key "
            "(after changing DCPORTAL_ENCRYPTION_KEYS yourself)",
        )

    def handle(self, *args, reencrypt_only, **options):
        if not reencrypt_only:
            self.add_key()
        secrets._fernet.cache_clear()
        total = 0
        with transaction.atomic():
            for model, field in secrets.encrypted_fields():
                # Read through a plain-text Cast: the field's own from_db_value would decrypt
                # (values_list applies it too), and rotation needs the Fernet tokens as stored.
                rows = (
                    model._base_manager.exclude(**{f"{field.attname}__isnull": True})
                    .annotate(stored_token=Cast(field.attname, output_field=TextField()))
                    .values_list("pk", "stored_token")
                )
                for pk, token in rows.iterator():
                    model._base_manager.filter(pk=pk).update(
                        **{field.attname: secrets.Ciphertext(secrets.rotate(token))}
                    )
                    total += 1
        self.stdout.write(f"re-encrypted {total} secret(s) with the newest key")

    def add_key(self):
        import os

        if os.environ.get("DCPORTAL_ENCRYPTION_KEYS"):
            raise CommandError(
                "keys come from DCPORTAL_ENCRYPTION_KEYS: put a new key first in it yourself "
                f"(e.g. {Fernet.generate_key().decode()}) and run with --reencrypt-only"
            )
        path = settings.ENCRYPTION_KEY_FILE
        existing = path.read_text() if path.exists() else ""
        path.write_text(Fernet.generate_key().decode() + "\n" + existing)
        path.chmod(0o600)
        self.stdout.write(f"added a new key to {path}")
