"""RQ entry points of virtualization (autodiscovered by dcportal.apps); the work is in
virt.services, one function per job kind."""

from dcportal.jobs import job_kind
from virt import services
from virt.models import Pool


def _vm(vm_id):
    vm = services.vm_for_job(vm_id)
    if vm is None:
        raise services.VmOperationFailed(f"VM #{vm_id} no longer exists.")
    return vm


@job_kind(services.SYNC_JOB_KIND, queue="virt", title="Sync a hypervisor pool")
def sync(ctx, pool_id):
    pool = Pool.objects.filter(pk=pool_id).first()
    if pool is None:
        raise services.VmOperationFailed(f"Pool #{pool_id} no longer exists.")
    return services.run_sync(ctx, pool)


@job_kind(services.CREATE_JOB_KIND, queue="virt", title="Create a VM")
def create(ctx, vm_id, start=True):
    return services.run_create(ctx, _vm(vm_id), start=start)


@job_kind(services.POWER_JOB_KIND, queue="virt", title="Power a VM")
def power(ctx, vm_id, action):
    return services.run_power(ctx, _vm(vm_id), action)


@job_kind(services.DESTROY_JOB_KIND, queue="virt", title="Destroy a VM")
def destroy(ctx, vm_id):
    return services.run_destroy(ctx, _vm(vm_id))


@job_kind(services.MIGRATE_JOB_KIND, queue="virt", title="Migrate a VM")
def migrate(ctx, vm_id, host_id):
    return services.run_migrate(ctx, _vm(vm_id), host_id)


@job_kind(services.INSTALL_JOB_KIND, queue="virt", title="PXE-install a VM")
def install(ctx, vm_id):
    vm = _vm(vm_id)
    services.recheck(ctx, vm, "virt.install_vm")
    return services.run_install(ctx, vm)


@job_kind(services.FINISH_INSTALL_JOB_KIND, queue="virt", title="Return an installed VM to disk")
def finish_install(ctx, vm_id):
    return services.run_finish_install(ctx, _vm(vm_id))
