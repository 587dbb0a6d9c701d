"""CRLs are refreshed before they expire: housekeeping queues one `ca.refresh_crls` job when a
CRL nears its nextUpdate, a real worker runs it, and the new CRL is signed and numbered."""

import io

import pytest
from cryptography import x509
from django.core.management import call_command
from django.utils import timezone

from ca import services
from ca.models import RevocationList
from dcportal.models import Job
from tests.workers import run_burst_worker


def _housekeeping():
    out = io.StringIO()
    call_command("housekeeping", stdout=out)
    return out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_housekeeping_queues_one_refresh_and_the_worker_runs_it(admin_user):
    root = services.create_authority(user=admin_user, name="Fleet root", slug="root")
    hosts = services.create_authority(
        user=admin_user, name="Hosts", slug="hosts", parent=root, crl_validity_hours=24
    )
    assert "ca:" not in _housekeeping()  # fresh CRLs: nothing due
    assert not Job.objects.filter(kind=services.REFRESH_JOB).exists()

    # Past the margin (half of a 24-hour CRL's life): due.
    RevocationList.objects.filter(authority=hosts).update(
        next_update=timezone.now() + timezone.timedelta(hours=11)
    )
    assert [a.slug for a in services.crls_due()] == ["hosts"]
    out = _housekeeping()
    assert "ca: CRL refresh queued as job" in out and "(Hosts)" in out
    assert "ca:" not in _housekeeping()  # already queued: not twice
    job = Job.objects.get(kind=services.REFRESH_JOB)

    run_burst_worker("default")
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.result == {"refreshed": ["Hosts"]}
    crl_row = RevocationList.objects.get(authority=hosts)
    assert crl_row.number == 2
    crl = x509.load_pem_x509_crl(crl_row.pem.encode())
    assert crl.next_update_utc - crl.last_update_utc == timezone.timedelta(hours=24)
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2
    assert services.crls_due() == []
    assert RevocationList.objects.get(authority=root).number == 1


@pytest.mark.django_db
def test_expired_authorities_are_not_refreshed(admin_user):
    root = services.create_authority(user=admin_user, name="Fleet root", slug="root")
    RevocationList.objects.filter(authority=root).update(next_update=timezone.now())
    type(root).objects.filter(pk=root.pk).update(not_after=timezone.now())
    assert services.crls_due() == []
    assert services.refresh_crls() == []
