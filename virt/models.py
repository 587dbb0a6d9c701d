# Models of the virtualization app; every model declares `tenancy` (see dcportal.rbac.restrict).
