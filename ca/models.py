# Models of the certificate authority app.
# Every model declares `tenancy` (see dcportal.rbac.restrict).
