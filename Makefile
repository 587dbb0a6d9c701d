# dcportal: `make run` serves the portal, `make test` runs the suite. Both set everything up.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test manage lint bench bench-inventory bench-power bench-deploy bench-dhcp bench-ca \
	bench-virt bench-cluster

$(STAMP): requirements.txt requirements-dev.txt requirements-libvirt.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "dcportal needs Python 3.11 or newer"; exit 1; }
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
		echo "python3-venv is missing; installing it (Debian/Ubuntu)"; \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq python3-venv; \
		else sudo apt-get update -qq && sudo apt-get install -y -qq python3-venv; fi && \
		$(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	@if pkg-config --exists libvirt 2>/dev/null; then \
		$(PY) -m pip install -q -r requirements-libvirt.txt; \
	else echo "libvirt development files not found: the libvirt driver stays unavailable"; fi
	@touch $(STAMP)

run: $(STAMP)
	$(PY) -m dcportal.launcher run

test: $(STAMP)
	$(PY) -m dcportal.launcher test $(PYTEST_ARGS)

# make manage ARGS="roles list"
manage: $(STAMP)
	$(PY) -m dcportal.launcher manage $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(STAMP)
	$(PY) -m dcportal.launcher bench bench/jobs.py

# BENCH_SERVERS=100000 by default; a few minutes on two cores.
bench-inventory: $(STAMP)
	$(PY) -m dcportal.launcher bench bench/inventory.py

# BENCH_BMCS=20 ipmi_sim BMCs (BENCH_DRIVER=redfish: one sushy-emulator); no database needed.
bench-power: $(STAMP)
	PYTHONPATH=$(CURDIR) $(PY) -P bench/power.py

# nodeset of 5000 servers; a boot storm of 2000 nodes against gunicorn (BENCH_STORM, BENCH_CLIENTS).
bench-deploy: $(STAMP)
	$(PY) -m dcportal.launcher bench bench/deploy.py

# makedhcp of BENCH_DHCP_HOSTS=10000 hosts in each format vs a bare values_list + join.
bench-dhcp: $(STAMP)
	$(PY) -m dcportal.launcher bench bench/dhcp.py

# CSR -> signed, stored, audited certificate per second; a CRL of BENCH_CA_REVOKED=10000 entries.
bench-ca: $(STAMP)
	$(PY) -m dcportal.launcher bench bench/ca.py

# BENCH_VMS=500 creations by BENCH_WORKERS=8 rqworker processes against the XAPI test server,
# pool max_sessions BENCH_MAX_SESSIONS=4, BENCH_XAPI_DELAY=0.01 s per XAPI call.
bench-virt: $(STAMP)
	$(PY) -m dcportal.launcher bench bench/virt.py

# nginx + 2 gunicorn web processes + 3 rqworkers: boot storm, registrations and API reads of
# 20000 servers, jobs end to end; writes the figures with the machine and date to BENCH_RESULTS.
BENCH_RESULTS ?= bench/RESULTS.md
bench-cluster: $(STAMP)
	$(PY) -m dcportal.launcher bench bench/cluster.py --write=$(BENCH_RESULTS)
