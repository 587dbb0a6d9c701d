"""sushy-emulator with a request journal, for tests that check what a client sent.

The emulator ignores parts of some requests (BootSourceOverrideEnabled: it always answers
"Continuous"), so the tests read the requests themselves: each POST, PATCH, PUT or DELETE that
passed authentication is appended to the file named by the DCPORTAL_JOURNAL_FILE setting of the
emulator's configuration, as one JSON line (method, path, JSON body; never the headers).
Run exactly like sushy-emulator: python sushy_journal.py --config FILE
"""

import json
import sys

import flask
from sushy_tools.emulator import main as emulator


@emulator.app.before_request
def _journal():
    request = flask.request
    path = emulator.app.config.get("DCPORTAL_JOURNAL_FILE")
    if not path or request.method not in ("POST", "PATCH", "PUT", "DELETE"):
        return
    entry = {
        "method": request.method,
        "path": request.path,
        "body": request.get_json(silent=True),
    }
    with open(path, "a") as journal:
        journal.write(json.dumps(entry) + "\n")


if __name__ == "__main__":
    sys.exit(emulator.main())
