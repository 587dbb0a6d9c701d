# Models of the inventory app; every model declares `tenancy` (see dcportal.rbac.restrict).
