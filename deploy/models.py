# Models of the deployment app; every model declares `tenancy` (see dcportal.rbac.restrict).
