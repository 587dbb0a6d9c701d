from django.apps import AppConfig


class CaConfig(AppConfig):
    name = "ca"
    verbose_name = "Certificate authority"

    def housekeeping(self):
        """Periodic upkeep (run by `manage.py housekeeping`): queue a CRL refresh when a CRL
        nears its nextUpdate. Returns lines to report."""
        from ca import services

        line = services.schedule_crl_refresh()
        return [line] if line else []
