"""Certificate authority throughput, printed as figures. Run: make bench-ca.

- CSR -> signed, stored and audited certificate per second, through the same service the
  API, the portal and the CLI use (parse and check the CSR, the server's names, sign, store
  the request and the certificate, audit both), for an RSA-2048 and an EC P-256 issuer
- the same through build-token autosign (token check, one-per-build guard, chain PEM)
- a CRL of BENCH_CA_REVOKED (default 10k) revoked entries: signing alone, and a publish
  (read the entries, sign, store, audit), with its size in DER
"""

import os
import statistics
import time
from datetime import timedelta

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dcportal.settings")
django.setup()

from django.db import transaction  # noqa: E402
from django.test import override_settings  # noqa: E402
from django.utils import timezone  # noqa: E402

from ca import crypto, services  # noqa: E402
from ca.models import Certificate, CertificateRequest  # noqa: E402
from dcportal import rbac  # noqa: E402
from dcportal.models import Role, Tenant, User  # noqa: E402
from deploy import tokens  # noqa: E402
from deploy.models import OperatingSystem, Profile, ServerDeploy, Template  # noqa: E402
from inventory.models import Interface, IPAddress, Server, Subnet  # noqa: E402

SIGNS = int(os.environ.get("BENCH_CA_SIGNS", "300"))
AUTOSIGNS = int(os.environ.get("BENCH_CA_AUTOSIGNS", "200"))
REVOKED = int(os.environ.get("BENCH_CA_REVOKED", "10000"))


def figure(name, value, unit=""):
    print(f"  {name:58} {value:>12} {unit}", flush=True)


def setup():
    admin = User.objects.create_user("bench-ca-admin", is_superuser=True)
    Role.objects.get(name=rbac.ADMIN).users.add(admin)
    tenant = Tenant.objects.create(name="Bench CA", slug="bench-ca")
    subnet = Subnet.objects.create(network="10.250.0.0/16", tenant=tenant, domain="bench.test")
    return admin, tenant, subnet


def make_server(tenant, subnet, n):
    server = Server.objects.create(hostname=f"node{n:05d}", tenant=tenant)
    interface = Interface.objects.create(
        server=server, name="eth0", mac=f"02:00:00:fa:{n >> 8:02x}:{n & 255:02x}", boot=True
    )
    IPAddress.objects.create(
        address=f"10.250.{n >> 8}.{n & 255}", subnet=subnet, interface=interface
    )
    return server


def csr_for(server, key_type="ec-p256"):
    name = f"{server.hostname}.bench.test"
    key = crypto.generate_key(key_type)
    return crypto.make_csr(key, common_name=name, dns_names=[name, server.hostname])


def bench_sign(admin, tenant, subnet, issuer_key_type, offset):
    root = services.create_authority(
        user=admin, name=f"Bench root {issuer_key_type}", slug=f"root-{issuer_key_type}"
    )
    hosts = services.create_authority(
        user=admin,
        name=f"Bench hosts {issuer_key_type}",
        slug=f"hosts-{issuer_key_type}",
        parent=root,
        key_type=issuer_key_type,
    )
    servers = [make_server(tenant, subnet, offset + n) for n in range(SIGNS)]
    csrs = [csr_for(server) for server in servers]
    before = Certificate.objects.count()
    latencies = []
    start = time.perf_counter()
    for server, csr in zip(servers, csrs, strict=True):
        t0 = time.perf_counter()
        services.submit_request(user=admin, authority=hosts, csr=csr, server=server, sign=True)
        latencies.append(time.perf_counter() - t0)
    seconds = time.perf_counter() - start
    issued = Certificate.objects.count() - before
    rate = f"{issued / seconds:.1f}"
    figure(f"sign via service, {issuer_key_type} issuer ({issued} certs)", rate, "certs/s")
    median = statistics.median(latencies) * 1000
    p95 = statistics.quantiles(latencies, n=20)[18] * 1000
    figure("  median / p95 latency", f"{median:.1f} / {p95:.1f}", "ms")
    return hosts


def bench_autosign(tenant, subnet, hosts, offset):
    os_row = OperatingSystem.objects.create(
        name="bench-os", family="redhat", version="9", kernel="os/vmlinuz"
    )
    template = Template.objects.create(name="bench-ks", kind="kickstart", content="text\n")
    profile = Profile.objects.create(name="bench-profile", os=os_row, install_template=template)
    jobs = []
    for n in range(AUTOSIGNS):
        server = make_server(tenant, subnet, offset + n)
        fields = tokens.issue()
        ServerDeploy.objects.create(
            server=server,
            profile=profile,
            next_boot=ServerDeploy.NextBoot.INSTALL,
            state=ServerDeploy.State.BUILDING,
            **fields,
        )
        jobs.append((tokens.token_for(fields["token_nonce"]), csr_for(server)))
    with override_settings(CA_HOST_AUTHORITY=hosts.slug):
        start = time.perf_counter()
        for token, csr in jobs:
            services.autosign(token=token, csr=csr)
        seconds = time.perf_counter() - start
    rate = f"{AUTOSIGNS / seconds:.1f}"
    figure(f"autosign with a build token ({AUTOSIGNS} certs)", rate, "certs/s")


def bench_crl(admin, tenant):
    authority = services.create_authority(
        user=admin, name="Bench CRL", slug="bench-crl", key_type="rsa-2048"
    )
    request = CertificateRequest.objects.filter(tenant=tenant).first()
    now = timezone.now()
    rows = [
        Certificate(
            tenant=tenant,
            authority=authority,
            request=request,
            serial=crypto.serial_hex(crypto.random_serial()),
            common_name=f"revoked{n}.bench.test",
            key_type="ec-p256",
            profile="server",
            certificate="(bench)",
            fingerprint="-",
            not_before=now,
            not_after=now + timedelta(days=365),
            revoked_at=now,
            revocation_reason="key_compromise" if n % 2 else "superseded",
        )
        for n in range(REVOKED)
    ]
    Certificate.objects.bulk_create(rows, batch_size=2000)
    entries = services._revoked_entries(authority, now)
    signer = services.signer_of(authority)
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        crl = crypto.build_crl(
            signer=signer,
            entries=entries,
            number=1,
            this_update=now,
            next_update=now + timedelta(days=7),
        )
        timings.append(time.perf_counter() - start)
    figure(f"CRL build + sign, {len(entries)} entries (best of 3)", f"{min(timings):.3f}", "s")
    figure("  CRL size (DER)", f"{len(crypto.pem_to_der(crl.pem)) / 1024:.0f}", "KiB")
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        with transaction.atomic():
            published = services.publish_crl(authority, user=admin)
        timings.append(time.perf_counter() - start)
    label = f"CRL publish (read, sign, store, audit), {published.entries} entries"
    figure(label, f"{min(timings):.3f}", "s")


def main():
    admin, tenant, subnet = setup()
    print(f"ca bench: {SIGNS} signs per issuer, {AUTOSIGNS} autosigns, {REVOKED} revoked entries")
    bench_sign(admin, tenant, subnet, "rsa-2048", 0)
    hosts = bench_sign(admin, tenant, subnet, "ec-p256", SIGNS)
    bench_autosign(tenant, subnet, hosts, 2 * SIGNS)
    bench_crl(admin, tenant)


if __name__ == "__main__":
    main()
