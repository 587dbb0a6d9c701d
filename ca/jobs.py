"""RQ entry points of the CA (autodiscovered by dcportal.apps)."""

from ca import services
from dcportal.jobs import job_kind


@job_kind(services.REFRESH_JOB, queue="default", title="Refresh CRLs")
def refresh_crls(ctx, force=False):
    """Republish the CRLs that expire within their refresh margin (all of them with `force`)."""
    ctx.progress(0, "Looking for CRLs to refresh")
    refreshed = services.refresh_crls(user=ctx.user, force=bool(force), progress=ctx.progress)
    for name in refreshed:
        ctx.log(f"CRL of {name} published")
    return {"refreshed": refreshed}
