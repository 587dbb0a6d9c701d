# Models of the certificate authority app; every model declares `tenancy` (see dcportal.rbac.restrict).
