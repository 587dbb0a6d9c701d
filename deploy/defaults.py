"""The templates shipped with dcportal (deploy/default_templates/*.j2) as builtin Template rows.

After every migrate the missing rows are created, shared by every tenant. A row that exists is
never touched: an admin may have edited it, and deleting one brings the shipped text back on
the next migrate.
"""

from deploy.rendering import builtin_source

# name: (kind, description)
BUILTINS = {
    "default-ipxe": ("ipxe", "iPXE script for install, localboot, rescue and discovery."),
    "default-pxelinux": ("pxelinux", "PXELinux config for install, localboot, rescue, discovery."),
    "default-grub": ("grub", "GRUB config for install, localboot, rescue and discovery."),
    "rhel9-kickstart": ("kickstart", "RHEL 9 family (Rocky, Alma, CentOS Stream) kickstart."),
    "debian-preseed": ("preseed", "Debian installer preseed."),
    "ubuntu-autoinstall": ("cloud-init", "Ubuntu Server autoinstall user-data."),
    "esxi-kickstart": ("esxi", "VMware ESXi 7/8 scripted install."),
    "fai-classes": ("fai", "FAI classes of the server, one per line."),
    "snippet-callbacks": ("snippet", "Shell functions that report progress, done and failed."),
    "snippet-network": ("snippet", "Kickstart network line of the primary interface."),
}


def create_builtin_templates(*, apps=None, using="default", **kwargs):
    """post_migrate receiver: create the builtin templates that are missing. Returns their names."""
    if apps is None:
        from django.apps import apps
    try:
        Template = apps.get_model("deploy", "Template")
    except LookupError:  # a migrate that stopped before deploy's tables exist
        return []
    existing = set(
        Template.objects.using(using).filter(name__in=BUILTINS).values_list("name", flat=True)
    )
    missing = [
        Template(
            name=name,
            kind=kind,
            description=description,
            content=builtin_source(name),
            builtin=True,
            tenant=None,
        )
        for name, (kind, description) in BUILTINS.items()
        if name not in existing
    ]
    Template.objects.using(using).bulk_create(missing, ignore_conflicts=True)
    return [template.name for template in missing]
